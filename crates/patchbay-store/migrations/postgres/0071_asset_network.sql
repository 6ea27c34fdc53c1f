-- 0071 an agent's network facts (issue 19): its interfaces' MACs and its
-- neighbour table, as JSON {"macs": [...], "neighbours": [{"ip", "mac"}]}
-- (passive discovery: the devices on its segments).
ALTER TABLE assets ADD COLUMN network TEXT NOT NULL DEFAULT '{}';
