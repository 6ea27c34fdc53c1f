-- 0105 drift baselines (issue 18, item 4): the golden host pinned as a policy
-- group's baseline, instead of the modal version per package. One row per
-- group; no row: the modal baseline.
CREATE TABLE drift_golden (
    group_name TEXT   PRIMARY KEY,
    asset      TEXT   NOT NULL,
    set_by     TEXT   NOT NULL,
    set_at     BIGINT NOT NULL
);
