"""val_drive.py LOCK ROUND OUTDIR [CACHE...]: copy LOCK's V and round ROUND's M and C out of the
DVC cache(s) into OUTDIR/models, check their md5, and drive them on validation tracks
71000-71099 with evaluate's settings (noise 0.2, 2 workers), main's params.yaml for env."""
import hashlib, os, shutil, subprocess, sys, yaml
lock, rnd, out = sys.argv[1], sys.argv[2], sys.argv[3]
caches = sys.argv[4:] or ["/work/s43/r22/.dvc/cache", "/work/s46/r22c/.dvc/cache"]
outs = {}
for st in yaml.safe_load(open(lock))["stages"].values():
    for o in st.get("outs", []):
        outs[o["path"]] = o["md5"]
need = ["models/vae.eqx", f"models/r{rnd}/mdrnn.eqx", f"models/r{rnd}/controller.eqx"]
for path in need:
    md5 = outs[path]
    src = next(f for c in caches if os.path.exists(f := f"{c}/files/md5/{md5[:2]}/{md5[2:]}"))
    dst = f"{out}/{path}"; os.makedirs(os.path.dirname(dst), exist_ok=True); shutil.copyfile(src, dst)
    assert hashlib.md5(open(dst, "rb").read()).hexdigest() == md5, path
    print(path, md5, "from", src)
cmd = ["wm", "play", "--models", f"{out}/models", "--round", rnd, "--seeds", os.environ.get("SEEDS", "71000-71099"),
       "--noise", "0.2", "--workers", "2", "--params", os.environ.get("PARAMS", "/work/main/params.yaml")]
print(" ".join(cmd), flush=True)
r = subprocess.run(cmd, capture_output=True, text=True)
open(f"{out}/play.txt", "w").write(r.stdout + r.stderr)
print(r.stdout[-300:], r.stderr[-2000:]); sys.exit(r.returncode)
