-- 0075 CSAF 2.0 (issue 20): imported CSAF documents (one row per tracking id,
-- replaced by a re-import; the validated document as JSON, decoded by the
-- app), and the products of agentless assets (vendor, product, version, CPE
-- 2.3 where known) they are matched against. An asset's products are
-- replaced whole by each import of the asset.
CREATE TABLE csaf_documents (
    id TEXT PRIMARY KEY,
    publisher TEXT NOT NULL,
    title TEXT NOT NULL,
    category TEXT NOT NULL,
    version TEXT NOT NULL,
    source TEXT NOT NULL,
    body TEXT NOT NULL,
    imported_at BIGINT NOT NULL,
    imported_by TEXT NOT NULL
);
CREATE TABLE asset_products (
    asset_id BIGINT NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
    vendor TEXT NOT NULL,
    product TEXT NOT NULL,
    version TEXT NOT NULL,
    cpe TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (asset_id, vendor, product, version)
);
