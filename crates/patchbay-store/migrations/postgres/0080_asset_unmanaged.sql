-- 0080 software installed outside the package manager (issue 20, item 5):
-- an agent's unmanaged items as JSON [{"ecosystem": "PyPI", "name", "version",
-- "path"}], sorted (Python distributions, global npm modules, Go and
-- cargo-auditable binaries with their dependencies). Their findings live in
-- `findings` with arch 'unmanaged:<path>'.
ALTER TABLE assets ADD COLUMN unmanaged TEXT NOT NULL DEFAULT '[]';
