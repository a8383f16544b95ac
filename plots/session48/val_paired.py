"""val_paired.py BEST_PLAY LAST_PLAY: paired best - last over validation tracks from wm play output."""
import re, sys, numpy as np
def read(p):
    d = {int(m.group(1)): float(m.group(2)) for m in re.finditer(r"^seed (\d+): (-?[\d.]+) \(", open(p).read(), re.M)}
    assert sorted(d) == list(range(71000, 71100)), (p, len(d))
    return d
b, l = read(sys.argv[1]), read(sys.argv[2])
vb, vl = np.array([b[s] for s in sorted(b)]), np.array([l[s] for s in sorted(l)])
x = vb - vl
print(f"best {vb.mean():.1f} ± {vb.std():.1f} | last {vl.mean():.1f} ± {vl.std():.1f} | paired {x.mean():+.1f} ± {x.std(ddof=1)/np.sqrt(len(x)):.1f} (s.e.), better {int((x>0).sum())}, worse {int((x<0).sum())}")
