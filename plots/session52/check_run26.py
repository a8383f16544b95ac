"""Run 26 vs run 25: which outputs changed, and are the changed model files equal past their header?"""

# python3 plots/session52/check_run26.py OLD_DVC_LOCK DVC_CACHE_DIR  (in the repo root, after the run)
import json
import sys

import yaml

a = yaml.safe_load(open(sys.argv[1]))["stages"]
b = yaml.safe_load(open("dvc.lock"))["stages"]


def cache(md5):
    return f"{sys.argv[2]}/files/md5/{md5[:2]}/{md5[2:]}"


changed, same_body, header_keys = [], 0, set()
for name in b:
    oa = {o["path"]: o.get("md5") for o in a[name].get("outs", [])}
    for o in b[name].get("outs", []):
        p, m = o["path"], o.get("md5")
        if oa.get(p) == m:
            continue
        changed.append(p)
        if p.endswith(".eqx"):
            old = open(cache(oa[p]), "rb").read()
            new = open(p, "rb").read()
            ho, _, bo = old.partition(b"\n")
            hn, _, bn = new.partition(b"\n")
            assert bo == bn, f"{p}: weights differ"
            same_body += 1
            jo, jn = json.loads(ho), json.loads(hn)
            header_keys |= {k for k in jn["info"] if jo["info"].get(k) != jn["info"].get(k)}
            assert {k for k in jn if jo.get(k) != jn.get(k)} <= {"info"}
print(len(changed), "outputs changed:", sorted(changed))
print(same_body, "model files with the same weights; header info keys that changed:", header_keys)
