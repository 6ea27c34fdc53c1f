-- 0071 an agent's network facts (issue 19): its interfaces' MACs, its
-- neighbour table and its listening sockets, as JSON {"macs": [...],
-- "neighbours": [{"ip", "mac"}], "listening": ["tcp/22", ...]} (passive
-- discovery: the devices on its segments, the services it offers).
ALTER TABLE assets ADD COLUMN network TEXT NOT NULL DEFAULT '{}';
