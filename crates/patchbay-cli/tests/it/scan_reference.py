#!/usr/bin/env python3
"""Independent reference for `patchbay scan`: reads the OSV feed with Python's own
zip/json/gzip readers, parses the package list itself, and decides each version
comparison with the real tools' algorithms:

  deb: `dpkg --compare-versions` (dpkg itself, one call per distinct pair)
  rpm: rpm.labelCompare from python3-rpm (librpm itself)
  apk: univers.versions.AlpineLinuxVersion (PyPI univers 32.0.1; no apk binary here)

Only plain `introduced: 0 -> fixed: X` ranges are evaluated (that is what these
feeds contain; anything else is reported as an error so the test notices).

usage: scan_reference.py deb|rpm|apk PACKAGES_FILE ECOSYSTEM FEED_FILE
prints a JSON list of [package, advisory, fixed_version] for affected packages.
"""
import gzip, json, subprocess, sys, zipfile

scheme, pkg_file, ecosystem, feed = sys.argv[1:5]


def records():
    if feed.endswith(".zip"):
        with zipfile.ZipFile(feed) as z:
            for n in z.namelist():
                if n.endswith(".json"):
                    yield json.loads(z.read(n))
    elif feed.endswith(".jsonl.gz"):
        with gzip.open(feed, "rt") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)
    else:
        raise SystemExit("unknown feed " + feed)


def packages():
    """(binary name, key name, key version)"""
    text = open(pkg_file, encoding="utf-8").read()
    out = []
    if scheme == "deb":
        for stanza in text.split("\n\n"):
            f = {}
            for line in stanza.splitlines():
                if line[:1] in (" ", "\t") or ":" not in line:
                    continue
                k, v = line.split(":", 1)
                f[k.strip().lower()] = v.strip()
            if "package" not in f or f.get("status", "").split()[-1:] in (["not-installed"], ["config-files"]):
                continue
            src, srcver = f["package"], f["version"]
            if "source" in f:
                parts = f["source"].split()
                src = parts[0]
                if len(parts) > 1:
                    srcver = parts[1].strip("()")
            out.append((f["package"], src, srcver))
    elif scheme == "apk":
        for stanza in text.split("\n\n"):
            f = {}
            for line in stanza.splitlines():
                if len(line) > 2 and line[1] == ":":
                    f[line[0]] = line[2:]
            if "P" in f:
                out.append((f["P"], f.get("o", f["P"]), f["V"]))
    elif scheme == "rpm":
        for line in text.splitlines():
            if not line.strip():
                continue
            name, evr, _arch, _src = line.split("\t")
            if evr.startswith("0:"):
                evr = evr[2:]
            out.append((name, name, evr))
    return out


cache = {}


def less(a, b):
    key = (a, b)
    if key in cache:
        return cache[key]
    if scheme == "deb":
        r = subprocess.run(["dpkg", "--compare-versions", a, "lt", b]).returncode == 0
    elif scheme == "rpm":
        import rpm

        def evr(s):
            e, _, rest = s.rpartition(":") if ":" in s else ("0", "", s)
            v, _, r = rest.rpartition("-") if "-" in rest else (rest, "", None)
            return (e or "0", v, r)

        r = rpm.labelCompare(evr(a), evr(b)) < 0
    else:
        from univers.versions import AlpineLinuxVersion as A

        r = A(a) < A(b)
    cache[key] = r
    return r


index = {}
for rec in records():
    for aff in rec.get("affected", []):
        if aff["package"]["ecosystem"] != ecosystem:
            continue
        for rng in aff.get("ranges", []):
            evs = rng["events"]
            intro = [e["introduced"] for e in evs if "introduced" in e]
            fixed = [e["fixed"] for e in evs if "fixed" in e]
            if rng["type"] != "ECOSYSTEM" or intro != ["0"] or len(fixed) != 1 or len(evs) != 2:
                raise SystemExit("unexpected range in %s: %r" % (rec["id"], rng))
            index.setdefault(aff["package"]["name"], []).append((rec["id"], fixed[0]))

result = set()
for binary, key, version in packages():
    for adv, fixed in index.get(key, []):
        if less(version, fixed):
            result.add((binary, adv, fixed))
json.dump(sorted(result), sys.stdout)
