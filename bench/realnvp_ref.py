"""PyTorch reference of dgm's `realnvp` (models/flow_models.h), layer for layer.

Usage: [THREADS=T] [FILTERS=F BLOCKS=N] [ALPHA=A] /usr/bin/python3 bench/realnvp_ref.py train STEPS [DATA_DIR] [SEED] [BATCH] [LR]
       /usr/bin/python3 bench/realnvp_ref.py step [BATCH]       ms per Adam step (the `realnvp_step` workload)

8-bit MNIST (the embedded 10k digits, data/mnist10k by default), dequantised y = (x + u) / 256,
logit with alpha = ALPHA (env, default 1e-6 as dgm; 0.05 before 2026-12-01), then 3 checkerboard couplings -> squeeze -> 3 channel couplings -> unsqueeze
-> 3 checkerboard couplings, ActNorm after each coupling, parity alternating; conditioners:
conv3x3(in->F)+ELU, blocks x [conv3x3 F->F, ELU, conv1x1 F->2F, ELU, h + v*sigmoid(g), ELU],
conv3x3(F->2C) whose shift half (output channels C..2C-1) is zero-initialised; s = (scale*tanh(s_raw) + shift)
on the free half, scale = shift = 0 at the start (a fresh coupling is the identity; s_raw keeps its random
start so that scale gets a gradient). Adam, gradients clipped to norm 1 (dgm's max_grad_norm).
Test NLL in bits/dim of the dequantised data, -log p(y)/(D ln 2) + 8, with one fixed noise
draw (seed 12345) per test image.
"""
import gzip, math, os, struct, sys, time
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F

ALPHA = float(os.environ.get("ALPHA", "1e-6"))  # the logit's alpha (dgm's --logit-alpha)
THREADS = int(os.environ.get("THREADS", "2"))  # torch threads; THREADS=1 for a one-thread comparison
FILTERS = int(os.environ.get("FILTERS", "16"))  # the conditioners' width and residual blocks (dgm's --filters / --blocks)
BLOCKS = int(os.environ.get("BLOCKS", "1"))


def load(d, split):
    with gzip.open(f"{d}/{split}-images-idx3-ubyte.gz") as f:
        _, n, h, w = struct.unpack(">IIII", f.read(16))
        return np.frombuffer(f.read(), np.uint8).reshape(n, 1, h, w)


def checkerboard(h, w, top_left_kept):
    i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return torch.tensor((((i + j) % 2 == 0) == top_left_kept).astype(np.float32))[None]  # (1, H, W)


def channel_mask(c, first_half_kept):
    m = torch.zeros(c, 1, 1)
    if first_half_kept: m[: c // 2] = 1
    else: m[c // 2:] = 1
    return m


class Conditioner(nn.Module):
    def __init__(self, cin, cout, filters, blocks):
        super().__init__()
        self.inp = nn.Conv2d(cin, filters, 3, padding=1)
        self.conv3 = nn.ModuleList([nn.Conv2d(filters, filters, 3, padding=1) for _ in range(blocks)])
        self.conv1 = nn.ModuleList([nn.Conv2d(filters, 2 * filters, 1) for _ in range(blocks)])
        self.out = nn.Conv2d(filters, cout, 3, padding=1)
        with torch.no_grad():  # zero the shift half only (dgm: models/flow_models.h)
            self.out.weight[cout // 2:].zero_(); self.out.bias[cout // 2:].zero_()

    def forward(self, x):
        h = F.elu(self.inp(x))
        for c3, c1 in zip(self.conv3, self.conv1):
            v, g = F.elu(c1(F.elu(c3(h)))).chunk(2, 1)
            h = F.elu(h + v * torch.sigmoid(g))
        return self.out(h)


class Coupling(nn.Module):
    def __init__(self, mask, channels, filters, blocks):
        super().__init__()
        self.register_buffer("mask", mask)
        self.net = Conditioner(channels, 2 * channels, filters, blocks)
        self.scale = nn.Parameter(torch.zeros(1)); self.shift = nn.Parameter(torch.zeros(1))

    def st(self, kept):
        s_raw, t = self.net(kept).chunk(2, 1)
        free = 1 - self.mask
        return (self.scale * torch.tanh(s_raw) + self.shift) * free, t * free

    def forward(self, x):
        s, t = self.st(x * self.mask)
        return x * s.exp() + t, s.flatten(1).sum(1)

    def inverse(self, z):
        s, t = self.st(z * self.mask)
        return (z - t) * (-s).exp()


class ActNorm(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(c)); self.bias = nn.Parameter(torch.zeros(c))
        self.register_buffer("initialized", torch.tensor(0.0))

    def forward(self, x):
        if self.training and self.initialized.item() == 0:
            with torch.no_grad():
                mu, sd = x.mean((0, 2, 3)), x.std((0, 2, 3), unbiased=False).clamp_min(1e-6)
                self.log_scale.data.copy_(-sd.log()); self.bias.data.copy_(-mu / sd); self.initialized.fill_(1)
        z = x * self.log_scale.exp()[None, :, None, None] + self.bias[None, :, None, None]
        return z, self.log_scale.sum().expand(x.shape[0]) * (x.shape[2] * x.shape[3])


def squeeze(x):  # (B, C, H, W) -> (B, 4C, H/2, W/2), channel 4c + 2i + j <- pixel (2h + i, 2w + j)
    b, c, h, w = x.shape
    return x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)


def unsqueeze(x):
    b, c, h, w = x.shape
    return x.view(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c // 4, 2 * h, 2 * w)


class RealNVP(nn.Module):
    def __init__(self, filters=16, blocks=1, n_checker=3, n_channel=3, size=28):  # dgm's defaults
        super().__init__()
        layers, parity = [], True
        def checker(n):
            nonlocal parity
            for _ in range(n):
                layers.extend([Coupling(checkerboard(size, size, parity), 1, filters, blocks), ActNorm(1)]); parity = not parity
        checker(n_checker)
        layers.append("squeeze")
        for _ in range(n_channel):
            layers.extend([Coupling(channel_mask(4, parity), 4, filters, blocks), ActNorm(4)]); parity = not parity
        layers.append("unsqueeze")
        checker(n_checker)
        self.order = layers
        self.mods = nn.ModuleList([l for l in layers if isinstance(l, nn.Module)])

    def log_prob(self, x, u):  # x (B, 1, H, W) 0..255, u noise in [0, 1) -> (B,) nats
        y = (x + u) / 256
        yt = ALPHA + (1 - 2 * ALPHA) * y
        h = yt.log() - (1 - yt).log()
        ld = (math.log(1 - 2 * ALPHA) - yt.log() - (1 - yt).log()).flatten(1).sum(1)
        for l in self.order:
            if l == "squeeze": h = squeeze(h)
            elif l == "unsqueeze": h = unsqueeze(h)
            else:
                h, d = l(h); ld = ld + d
        D = h[0].numel()
        return -0.5 * h.pow(2).flatten(1).sum(1) - 0.5 * D * math.log(2 * math.pi) + ld - D * math.log(256)


def bits_per_dim(model, te, seed=12345):
    g = torch.Generator().manual_seed(seed)
    model.eval(); tot = 0.0
    with torch.no_grad():
        for i in range(0, len(te), 100):
            xb = te[i:i + 100]
            tot += -model.log_prob(xb, torch.rand(xb.shape, generator=g)).sum().item()
    model.train()
    return tot / (len(te) * te[0].numel() * math.log(2))


def train(steps, d, seed, B, lr):
    torch.manual_seed(seed); torch.set_num_threads(THREADS)
    tr, te = torch.tensor(load(d, "train")).float(), torch.tensor(load(d, "test")).float()
    model = RealNVP(FILTERS, BLOCKS)
    print(f"parameters {sum(p.numel() for p in model.parameters())}", flush=True)
    opt = torch.optim.Adam(model.parameters(), lr)
    g = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for s in range(steps):
        idx = torch.randint(0, len(tr), (B,), generator=g)
        xb = tr[idx]
        opt.zero_grad()
        loss = -model.log_prob(xb, torch.rand(xb.shape, generator=g)).mean() / xb[0].numel()
        loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step()
        if s % 50 == 0: print(f"step {s} loss {loss.item() / math.log(2):.4f} bits/dim {time.time() - t0:.0f}s", flush=True)
    print(f"test_nll {bits_per_dim(model, te):.4f} bits/dim after {steps} steps of {B}, {time.time() - t0:.0f}s", flush=True)


def step_ms(B):
    torch.manual_seed(0); torch.set_num_threads(THREADS)
    model = RealNVP(FILTERS, BLOCKS); opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.randint(0, 256, (B, 1, 28, 28)).float()
    times = []
    for r in range(7):
        t0 = time.time()
        opt.zero_grad(); loss = -model.log_prob(x, torch.rand(x.shape)).mean() / 784; loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step()
        times.append((time.time() - t0) * 1e3)
    print(f"realnvp_step_B{B} {sorted(times[2:])[2]:.1f} ms (median of 5 after 2 warm-ups)")


if __name__ == "__main__":
    if sys.argv[1] == "train":
        steps = int(sys.argv[2])
        d = sys.argv[3] if len(sys.argv) > 3 else "data/mnist10k"
        seed = int(sys.argv[4]) if len(sys.argv) > 4 else 0
        B = int(sys.argv[5]) if len(sys.argv) > 5 else 32
        lr = float(sys.argv[6]) if len(sys.argv) > 6 else 1e-3
        train(steps, d, seed, B, lr)
    else:
        step_ms(int(sys.argv[2]) if len(sys.argv) > 2 else 32)
