"""Train the PyTorch twin (bench/realnvp_ref.py) from a dgm realnvp checkpoint's weights.

Usage: [SHUFFLE=in,conv1,...] /usr/bin/python3 bench/realnvp_from_dgm.py CHECKPOINT SEED [STEPS] [DATA_DIR]
       /usr/bin/python3 bench/realnvp_from_dgm.py export RUN_DIR OUT_DIR SEED [GROUPS]

CHECKPOINT is a dgm model.safetensors of the twin's architecture (`--checkerboard 3 --channel 3
--learned-prior false --dequantization uniform`); its conditioners, scales, shifts and ActNorms are
copied into the twin's RealNVP by name, then the twin's own loop trains it (Adam lr 1e-3, batch 32,
clipping at 1, data order and noise from SEED) and prints the test NLL. SHUFFLE names conditioner
tensors (substrings of dgm's keys, e.g. "conditioner" for all, ".in." for the first conv) whose
elements are permuted before training; the output conv is never shuffled (half of it must stay zero).
`export` goes the other way: it copies the dgm run folder RUN_DIR (one step, as below) to OUT_DIR with
the twin's initial state for SEED (ActNorms initialised on the twin's first batch) written over its
tensors, GROUPS of them (in, block0_conv3, block0_conv1, out, act, ss; default all), the Adam state
zeroed and the checksum renewed, so that `dgm train realnvp --resume OUT_DIR --steps 281 --lr 1e-3
--lr-schedule constant` is dgm's loop from the twin's start.
To make the initial state: build/dgm train realnvp <the twin's flags> --steps 1 --lr 1e-12
--lr-schedule constant --seed S --out DIR (one step at lr 1e-12 moves no float32 weight).
"""
import json, os, shutil, struct, sys, zlib
import numpy as np, torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import realnvp_ref as R


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header, base, out = json.loads(raw[8:8 + n]), 8 + n, {}
    for k, v in header.items():
        if k == "__metadata__" or v["dtype"] not in ("F32", "F64"): continue
        s, e = v["data_offsets"]
        out[k] = np.frombuffer(raw[base + s:base + e], np.float32 if v["dtype"] == "F32" else np.float64).reshape(v["shape"])
    return out


DGM_NAMES = {"in": "inp", "block0_conv3": "conv3.0", "block0_conv1": "conv1.0", "out": "out"}


def paired_layers(keys, model, source):
    """(dgm key prefix "flow.I.", twin module) for each coupling and ActNorm, in order."""
    flows = sorted({int(k.split(".")[1]) for k in keys if k.startswith("flow.") and (k.endswith("scale") or k.endswith("bias"))})
    if len(flows) != len(model.mods):
        sys.exit(f"{source}: {len(flows)} flow layers with parameters, the twin has {len(model.mods)}: not the twin's architecture")
    return [(f"flow.{i}.", mod) for i, mod in zip(flows, model.mods)]


def export(run_dir, out_dir, seed, groups, d="data/mnist10k"):
    if os.path.exists(out_dir): sys.exit(f"{out_dir} exists; choose a new folder")
    shutil.copytree(run_dir, out_dir)
    path = os.path.join(out_dir, "model.safetensors")
    raw = bytearray(open(path, "rb").read())
    n = struct.unpack("<Q", raw[:8])[0]
    header, base = json.loads(raw[8:8 + n]), 8 + n
    kinds = {"F32": np.float32, "F64": np.float64, "I64": np.int64}

    def put(k, value):
        v = header[k]; s, e = v["data_offsets"]
        a = np.ascontiguousarray(np.asarray(value, kinds[v["dtype"]]).reshape(v["shape"]))
        assert a.nbytes == e - s, k
        raw[base + s:base + e] = a.tobytes()

    for k, v in header.items():
        if k.startswith("optimizer."): put(k, np.zeros(v["shape"]))
    torch.manual_seed(seed)
    model = R.RealNVP(R.FILTERS, R.BLOCKS)
    tr = torch.tensor(R.load(d, "train")).float()
    g = torch.Generator().manual_seed(seed)
    xb = tr[torch.randint(0, len(tr), (32,), generator=g)]
    with torch.no_grad(): model.log_prob(xb, torch.rand(xb.shape, generator=g))  # the ActNorms' data-dependent start
    for p, mod in paired_layers(header, model, run_dir):
        if isinstance(mod, R.Coupling):
            if "ss" in groups: put(p + "scale", mod.scale.detach()); put(p + "shift", mod.shift.detach())
            for dn, tn in DGM_NAMES.items():
                if dn in groups:
                    sub = mod.net.get_submodule(tn)
                    put(p + f"conditioner.{dn}.weight", sub.weight.detach()); put(p + f"conditioner.{dn}.bias", sub.bias.detach())
        elif "act" in groups:
            put(p + "log_scale", mod.log_scale.detach()); put(p + "bias", mod.bias.detach())
    old = header["__metadata__"]["dgm.crc32"].encode()
    new = b"%08x" % zlib.crc32(bytes(raw[base:]))
    head = bytes(raw[8:base])
    if head.count(old) != 1: sys.exit(f"{path}: cannot place the new checksum")
    raw[8:base] = head.replace(old, new)
    open(path, "wb").write(raw)
    print(f"wrote {out_dir}: the twin's seed-{seed} start ({','.join(groups)}), Adam state zeroed")


def main():
    if sys.argv[1] == "export":
        groups = sys.argv[5].split(",") if len(sys.argv) > 5 else ["in", "block0_conv3", "block0_conv1", "out", "act", "ss"]
        return export(sys.argv[2], sys.argv[3], int(sys.argv[4]), groups)
    ckpt, seed = sys.argv[1], int(sys.argv[2])
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 281
    d = sys.argv[4] if len(sys.argv) > 4 else "data/mnist10k"
    W = read_safetensors(ckpt)
    groups = [g for g in os.environ.get("SHUFFLE", "").split(",") if g]
    rs = np.random.RandomState(7)
    for k in sorted(W):
        if "conditioner" in k and ".out." not in k and any(g in k for g in groups):
            a = W[k].ravel().copy(); rs.shuffle(a); W[k] = a.reshape(W[k].shape)
    torch.manual_seed(seed); torch.set_num_threads(R.THREADS)
    model = R.RealNVP(R.FILTERS, R.BLOCKS)
    with torch.no_grad():
        for p, mod in paired_layers(W, model, ckpt):
            if isinstance(mod, R.Coupling):
                mod.scale.copy_(torch.tensor(W[p + "scale"])); mod.shift.copy_(torch.tensor(W[p + "shift"]))
                for dn, tn in DGM_NAMES.items():
                    sub = mod.net.get_submodule(tn)
                    sub.weight.copy_(torch.tensor(W[p + f"conditioner.{dn}.weight"])); sub.bias.copy_(torch.tensor(W[p + f"conditioner.{dn}.bias"]))
            else:
                mod.log_scale.copy_(torch.tensor(W[p + "log_scale"])); mod.bias.copy_(torch.tensor(W[p + "bias"])); mod.initialized.fill_(1)
    tr, te = torch.tensor(R.load(d, "train")).float(), torch.tensor(R.load(d, "test")).float()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        xb = tr[torch.randint(0, len(tr), (32,), generator=g)]
        opt.zero_grad()
        loss = -model.log_prob(xb, torch.rand(xb.shape, generator=g)).mean() / xb[0].numel()
        loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step()
    print(f"test_nll {R.bits_per_dim(model, te):.4f} bits/dim after {steps} steps from {ckpt}" + (f", shuffled: {','.join(groups)}" if groups else ""), flush=True)


if __name__ == "__main__":
    main()
