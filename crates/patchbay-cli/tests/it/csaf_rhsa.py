#!/usr/bin/python3
"""Independent reference for the RHSA-via-CSAF test (issue 20, item 4).

Reads a Red Hat CSAF document with the json module and an `rpm -qa`-style
list (name TAB epoch:version-release TAB arch TAB srpm), and prints, as JSON,
the findings a host of release VERSION_ID has: for every `fixed` product that
is a `default_component_of` a platform whose CPE is a stream of that release
(enterprise_linux:<major>, or rhel_eus/aus/e4s/tus:<major.minor>), an installed
package of the same name and arch that librpm's labelCompare orders below the
fixed EVR; the fixed EVR reported is the lowest such one.

usage: csaf_rhsa.py DOC.json PACKAGES.txt VERSION_ID
"""
import json
import sys

import rpm


def cpe_fields(cpe):
    if cpe.startswith("cpe:/"):
        f = cpe[5:].split(":")
    elif cpe.startswith("cpe:2.3:"):
        f = cpe[8:].split(":")
    else:
        return None
    f += [""] * 4
    return [x.lower() for x in f[:4]]


def stream_of(cpe, version_id):
    f = cpe_fields(cpe or "")
    if not f or f[1] != "redhat":
        return False
    major = version_id.split(".")[0]
    minor = ".".join(version_id.split(".")[:2])
    if f[2] == "enterprise_linux":
        return f[3] in (major, minor)
    if f[2] in ("rhel_eus", "rhel_aus", "rhel_e4s", "rhel_tus"):
        return f[3] == minor
    return False


def split_nevra(s):
    rest, arch = s.rsplit(".", 1)
    rest, release = rest.rsplit("-", 1)
    name, version = rest.rsplit("-", 1)
    epoch, _, version = version.rpartition(":")
    return name, (epoch or "0", version, release), arch


def evr(s):
    epoch, _, vr = s.rpartition(":")
    version, release = vr.rsplit("-", 1)
    return (epoch or "0", version, release)


def main():
    doc = json.load(open(sys.argv[1]))
    version_id = sys.argv[3]
    cpes = {}

    def walk(branches):
        for b in branches:
            p = b.get("product")
            if p:
                cpes[p["product_id"]] = p.get("product_identification_helper", {}).get("cpe")
            walk(b.get("branches", []))

    walk(doc["product_tree"].get("branches", []))
    rel = {r["full_product_name"]["product_id"]: r for r in doc["product_tree"].get("relationships", [])}
    fixes = {}
    for v in doc.get("vulnerabilities", []):
        for pid in v.get("product_status", {}).get("fixed", []):
            r = rel.get(pid)
            if not r or not stream_of(cpes.get(r["relates_to_product_reference"]), version_id):
                continue
            name, fixed, arch = split_nevra(r["product_reference"])
            if arch != "src":
                fixes.setdefault((name, arch), []).append(fixed)
    out = {}
    for line in open(sys.argv[2]):
        if not line.strip():
            continue
        name, version, arch = line.split("\t")[:3]
        inst = evr(version)
        for a in (arch, "noarch"):
            for fixed in fixes.get((name, a), []):
                if rpm.labelCompare(inst, fixed) < 0:
                    key = "%s.%s" % (name, arch)
                    best = out.get(key)
                    if best is None or rpm.labelCompare(fixed, evr(best[1])) < 0:
                        out[key] = (version, "%s:%s-%s" % fixed)
    print(json.dumps(sorted([k, v[0], v[1]] for k, v in out.items())))


main()
