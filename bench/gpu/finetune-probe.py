"""Research probe (not product code): how far does FULL fine-tuning of ImageNet MobileNet v1 1.0
(the same weights as ../shared/weights/mobilenet_v1_1.0_224_notop) go on the HAM10000 dev set?
Lesion-grouped stratified 5-fold CV and leave-one-source-out, as bench/quality.ts measures.
Run on a GPU: python3 finetune_probe.py <dir with images/, labels.csv, weights/, ref_features.json> <out.json>
"""
import csv, json, math, os, sys, time
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F
from PIL import Image
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.metrics import roc_auc_score

root, out_path = sys.argv[1], sys.argv[2]
budget_s = float(os.environ.get("PROBE_BUDGET_S", "420"))
T0 = time.time()
dev = "cuda"
torch.backends.cudnn.benchmark = True
torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True
report = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "configs": []}

def log(*a):
    print(f"[{time.time()-T0:6.1f}s]", *a, flush=True)

# ---- weights (tfjs layers model) ----
mj = json.load(open(f"{root}/weights/model.json"))
W = {}
for g in mj["weightsManifest"]:
    buf = b"".join(open(f"{root}/weights/{p}", "rb").read() for p in g["paths"])
    off = 0
    for w in g["weights"]:
        n = int(np.prod(w["shape"])) if w["shape"] else 1
        W[w["name"]] = np.frombuffer(buf, dtype=np.float32, count=n, offset=off).reshape(w["shape"]); off += 4 * n
topo = mj["modelTopology"]; layers = topo.get("model_config", topo)["config"]["layers"]

class SameConv(nn.Module):
    """TF 'same' padding (extra pixel bottom/right) then a valid conv."""
    def __init__(self, conv, k, s):
        super().__init__(); self.conv, self.k, self.s = conv, k, s
    def forward(self, x):
        h = x.shape[-1]; s, k = self.s, self.k
        total = max(k - s, 0) if h % s == 0 else max(k - h % s, 0)
        a = total // 2
        return self.conv(F.pad(x, (a, total - a, a, total - a)))

def build_backbone():
    mods = []
    for l in layers:
        c, cf = l["class_name"], l["config"]; name = cf["name"]
        if c == "Conv2D":
            k = W[f"{name}/kernel"]; conv = nn.Conv2d(k.shape[2], k.shape[3], k.shape[0], stride=cf["strides"][0], bias=False)
            conv.weight.data = torch.from_numpy(k.transpose(3, 2, 0, 1).copy())
            mods.append(SameConv(conv, k.shape[0], cf["strides"][0]) if cf["padding"] == "same" else conv)
        elif c == "DepthwiseConv2D":
            k = W[f"{name}/depthwise_kernel"]; ch = k.shape[2]
            conv = nn.Conv2d(ch, ch, k.shape[0], stride=cf["strides"][0], groups=ch, bias=False)
            conv.weight.data = torch.from_numpy(k.transpose(2, 3, 0, 1).copy())
            mods.append(SameConv(conv, k.shape[0], cf["strides"][0]))
        elif c == "BatchNormalization":
            g = W[f"{name}/gamma"]; bn = nn.BatchNorm2d(len(g), eps=cf["epsilon"], momentum=0.01)
            bn.weight.data = torch.from_numpy(g.copy()); bn.bias.data = torch.from_numpy(W[f"{name}/beta"].copy())
            bn.running_mean.data = torch.from_numpy(W[f"{name}/moving_mean"].copy()); bn.running_var.data = torch.from_numpy(W[f"{name}/moving_variance"].copy())
            mods.append(bn)
        elif c in ("Activation", "ReLU"):
            act = cf.get("activation", "relu6" if cf.get("max_value") == 6 else "relu")
            mods.append(nn.ReLU6() if act == "relu6" else nn.ReLU())
        elif c == "InputLayer":
            continue
        else:
            raise SystemExit(f"unexpected layer {c} {name}")
    return nn.Sequential(*mods)

# ---- data ----
rows = list(csv.DictReader(open(f"{root}/labels.csv")))
ids = [r["image_id"] for r in rows]
y = np.array([r["label"] == "malignant" for r in rows], dtype=np.int64)
dx_names = sorted(set(r["diagnosis"] for r in rows)); dx = np.array([dx_names.index(r["diagnosis"]) for r in rows])
mal_dx = [dx_names.index(d) for d in ("mel", "bcc", "akiec")]
src = np.array([r["ham_dataset"] for r in rows]); lesion = np.array([r["lesion_id"] for r in rows])
imgs = np.stack([np.asarray(Image.open(f"{root}/images/{i}.jpg").convert("RGB").resize((224, 224)), dtype=np.uint8) for i in ids])
X = torch.from_numpy(imgs).to(dev).permute(0, 3, 1, 2).contiguous()  # uint8 [n,3,224,224]
log("images", X.shape)

def prep(xb):  # uint8 → [-1, 1], as the tfjs mobilenet_v1 weights expect
    return xb.float() / 127.5 - 1.0

# ---- conversion check against our tfjs features ----
ref = json.load(open(f"{root}/ref_features.json"))
bb = build_backbone().to(dev).eval()
with torch.no_grad():
    idx = [ids.index(i) for i in ref["ids"]]
    f = bb(prep(X[idx])).mean((2, 3)).cpu().numpy()
r = np.array(ref["features"], dtype=np.float32)
report["conversion_check"] = {"max_abs_diff": float(np.abs(f - r).max()), "ref_abs_max": float(np.abs(r).max()),
                              "corr": float(np.corrcoef(f.ravel(), r.ravel())[0, 1])}
log("conversion", report["conversion_check"])

def within_source_auc(yt, p, s):
    num = den = 0.0
    for u in np.unique(s):
        k = s == u
        if yt[k].min() == yt[k].max(): continue
        npos = yt[k].sum(); nneg = k.sum() - npos
        num += roc_auc_score(yt[k], p[k]) * npos * nneg; den += npos * nneg
    return num / den

def augment(xb, g):
    n = xb.shape[0]
    ang = torch.rand(n, device=dev, generator=g) * 2 * math.pi
    sc = 0.8 + 0.2 * torch.rand(n, device=dev, generator=g)
    flip = torch.where(torch.rand(n, device=dev, generator=g) < 0.5, -1.0, 1.0)
    tx = (torch.rand(n, 2, device=dev, generator=g) - 0.5) * 0.2
    cos, sin = torch.cos(ang) * sc, torch.sin(ang) * sc
    theta = torch.stack([torch.stack([cos * flip, -sin, tx[:, 0]], 1), torch.stack([sin * flip, cos, tx[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, xb.shape, align_corners=False)
    out = F.grid_sample(xb, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    gain = 1 + (torch.rand(n, 3, 1, 1, device=dev, generator=g) - 0.5) * 0.2
    bright = (torch.rand(n, 1, 1, 1, device=dev, generator=g) - 0.5) * 0.2
    return (out * gain + bright).clamp(-1, 1)

def dihedral(xb, k):
    x = torch.rot90(xb, k % 4, (2, 3))
    return torch.flip(x, (3,)) if k >= 4 else x

def run_fold(tr, te, cfg, seed):
    torch.manual_seed(seed); g = torch.Generator(device=dev); g.manual_seed(seed)
    bb = build_backbone().to(dev).to(memory_format=torch.channels_last)
    k = len(dx_names) if cfg["target"] == "diagnosis" else 1
    head = nn.Sequential(nn.Dropout(0.3), nn.Linear(1024, k)).to(dev)
    frozen = list(bb) if cfg["mode"] == "linear" else []
    if cfg["mode"] == "top":
        # Notop v1 ends with block 13's depthwise conv, BN, ReLU; every block below is dw+BN+ReLU+pw+BN+ReLU.
        keep = 3 + 6 * (cfg["blocks"] - 1)
        frozen = list(bb)[:-keep]
    for mod in frozen:
        for p_ in mod.parameters(): p_.requires_grad_(False)
    params = [{"params": head.parameters(), "lr": cfg["lr_head"]}]
    if cfg["mode"] in ("full", "top"):
        params.append({"params": [p_ for p_ in bb.parameters() if p_.requires_grad], "lr": cfg["lr_backbone"]})
    opt = torch.optim.AdamW(params, weight_decay=1e-4)
    epochs, bs = cfg["epochs"], 32
    steps = epochs * math.ceil(len(tr) / bs); sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[p["lr"] for p in params], total_steps=steps, pct_start=0.15)
    if cfg["target"] == "diagnosis":
        counts = np.bincount(dx[tr], minlength=k).astype(np.float64); wts = torch.tensor(len(tr) / (k * np.maximum(counts, 1)), dtype=torch.float32, device=dev)
        tgt = torch.from_numpy(dx).to(dev)
    else:
        pos = y[tr].mean(); wts = torch.tensor([(1 - pos) / pos], device=dev); tgt = torch.from_numpy(y).float().to(dev)
    tr_t = torch.from_numpy(np.asarray(tr)).to(dev)
    for ep in range(epochs):
        bb.train(cfg["mode"] != "linear"); head.train()
        for mod in frozen: mod.eval()  # frozen BatchNorm keeps its ImageNet statistics
        perm = tr_t[torch.randperm(len(tr), device=dev, generator=g)]
        for i in range(0, len(perm), bs):
            b = perm[i:i + bs]
            if len(b) < 2: continue
            xb = augment(prep(X[b]), g).contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                logits = head(bb(xb).mean((2, 3)))
            logits = logits.float()
            loss = F.cross_entropy(logits, tgt[b], weight=wts) if cfg["target"] == "diagnosis" else F.binary_cross_entropy_with_logits(logits[:, 0], tgt[b], pos_weight=wts)
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step(); sched.step()
    bb.eval(); head.eval(); probs = []
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        te_t = torch.from_numpy(np.asarray(te)).to(dev)
        for i in range(0, len(te), 256):
            xb = prep(X[te_t[i:i + 256]]); acc = 0
            views = 8 if cfg.get("tta", True) else 1
            for v in range(views):
                lo = head(bb(dihedral(xb, v).contiguous(memory_format=torch.channels_last)).mean((2, 3))).float()
                acc = acc + (F.softmax(lo, 1)[:, mal_dx].sum(1) if cfg["target"] == "diagnosis" else torch.sigmoid(lo[:, 0]))
            probs.append((acc / views).cpu().numpy())
    return np.concatenate(probs)

def evaluate(cfg):
    t = time.time(); res = {"config": cfg}
    sgkf = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=42)
    oof = np.zeros(len(y)); aucs = []
    for fi, (tr, te) in enumerate(sgkf.split(np.zeros(len(y)), y, lesion)):
        p = run_fold(tr, te, cfg, 42 + fi); oof[te] = p; aucs.append(roc_auc_score(y[te], p))
    res["cv_auc_folds"] = aucs; res["cv_auc_mean"] = float(np.mean(aucs)); res["cv_auc_sd"] = float(np.std(aucs, ddof=1))
    res["cv_within_source"] = within_source_auc(y, oof, src); res["cv_pooled"] = roc_auc_score(y, oof)
    loso = {}; ool = np.zeros(len(y))
    for s in ([] if cfg.get("cv_only") else sorted(set(src))):
        te = np.where(src == s)[0]; tr = np.where(src != s)[0]
        p = run_fold(tr, te, cfg, 7); ool[te] = p; loso[s] = roc_auc_score(y[te], p)
    res["loso"] = loso
    if loso: res["loso_min"] = min(loso.values()); res["loso_within_source"] = within_source_auc(y, ool, src)
    res["seconds"] = time.time() - t
    log(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items() if k not in ("cv_auc_folds",)}))
    report["configs"].append(res)
    json.dump(report, open(out_path, "w"), indent=1)

configs = [
    {"name": "top 4 blocks fine-tuned, binary (CV only)", "mode": "top", "blocks": 4, "target": "binary", "epochs": 12, "lr_head": 1e-3, "lr_backbone": 3e-4, "cv_only": True, "set": "partial"},
    {"name": "top 2 blocks fine-tuned, binary (CV only)", "mode": "top", "blocks": 2, "target": "binary", "epochs": 12, "lr_head": 1e-3, "lr_backbone": 3e-4, "cv_only": True, "set": "partial"},
    {"name": "linear probe (frozen), binary", "mode": "linear", "target": "binary", "epochs": 15, "lr_head": 3e-3, "lr_backbone": 0},
    {"name": "full fine-tune, binary", "mode": "full", "target": "binary", "epochs": 12, "lr_head": 1e-3, "lr_backbone": 3e-4},
    {"name": "full fine-tune, diagnosis", "mode": "full", "target": "diagnosis", "epochs": 12, "lr_head": 1e-3, "lr_backbone": 3e-4},
    {"name": "full fine-tune, diagnosis, 25 epochs", "mode": "full", "target": "diagnosis", "epochs": 25, "lr_head": 1e-3, "lr_backbone": 3e-4},
]
only = os.environ.get("PROBE_SET")
for cfg in configs:
    if only and cfg.get("set", "full") != only:
        continue
    if time.time() - T0 > budget_s:
        log("budget spent; skipped", cfg["name"]); continue
    evaluate(cfg)
log("done")
