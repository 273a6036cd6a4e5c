"""The float golden model's arithmetic: every update against explicit formulas, tangents
and BP against autograd, DDFA's feedback estimate against the expected Jacobian
(paper eqs. 14-16), the alignment angle (eq. 20), and the zero-initialisation stall."""

import math

import pytest
import torch

from ddfa.config import ConfigError, default_config
from golden.alignment import angle_deg
from golden.float_model import FloatModel, default_align_every, train_float
from golden.order import derived_seed, epoch_order, epoch_orders


def make_cfg(algo="ddfa", **changes):
    base = {"model.algorithm": algo, "hardware.board": "none"}
    base.update(changes)
    return default_config("icebreaker").replace(**base)


# --------------------------------------------------------------------------------------
# An independent reference: scalar loops, no tensors, the paper's equations written out
# --------------------------------------------------------------------------------------

def _relu_d(a):
    return 1.0 if a > 0 else 0.0


def reference_step(W, b, B, xs, labels, vs, algo, lr, alpha, wd=0.0):
    """One SGD step on a batch, every quantity a Python float.

    W[l][i][j], b[l][i]; B[l][i][o] for hidden layers; xs[n][j]; vs[n][l][i].
    Returns the updated (W, b, B).
    """
    L, N = len(W), len(xs)
    n_out = len(W[-1])
    dW = [[[0.0] * len(W[l][0]) for _ in W[l]] for l in range(L)]
    db = [[0.0] * len(W[l]) for l in range(L)]
    dB = [[[0.0] * n_out for _ in B[l]] for l in range(len(B))]
    for n in range(N):
        y, d, a_all, y_all = xs[n], [0.0] * len(xs[n]), [], [xs[n]]
        for l in range(L):
            a = [sum(W[l][i][j] * y[j] for j in range(len(y))) + b[l][i] for i in range(len(W[l]))]
            t = [sum(W[l][i][j] * d[j] for j in range(len(d))) for i in range(len(W[l]))]
            if l < L - 1:
                y = [max(0.0, ai) for ai in a]
                d = [_relu_d(a[i]) * t[i] + vs[n][l][i] for i in range(len(a))]
            else:
                y, d = a, t
            a_all.append(a)
            y_all.append(y)
        m = max(y)
        ex = [math.exp(z - m) for z in y]
        p = [z / sum(ex) for z in ex]
        e = [(p[o] - (1.0 if o == labels[n] else 0.0)) / N for o in range(n_out)]
        deltas = [None] * L
        deltas[L - 1] = e
        for l in range(L - 2, -1, -1):
            if algo == "bp":
                g = [sum(W[l + 1][k][i] * deltas[l + 1][k] for k in range(len(W[l + 1])))
                     for i in range(len(W[l]))]
            else:
                g = [sum(B[l][i][o] * e[o] for o in range(n_out)) for i in range(len(W[l]))]
            deltas[l] = [_relu_d(a_all[l][i]) * g[i] for i in range(len(g))]
        for l in range(L):
            for i in range(len(W[l])):
                db[l][i] += deltas[l][i]
                for j in range(len(W[l][i])):
                    dW[l][i][j] += deltas[l][i] * y_all[l][j]
        for l in range(len(B)):
            for i in range(len(B[l])):
                for o in range(n_out):
                    if algo == "ddfa":
                        dB[l][i][o] += vs[n][l][i] * d[o] / N          # mean of v d_L^T
                    elif algo == "dkp":
                        dB[l][i][o] += y_all[l + 1][i] * e[o]          # sum of y_l e^T
    W = [[[W[l][i][j] * (1 - lr * wd) - lr * dW[l][i][j] for j in range(len(W[l][i]))]
          for i in range(len(W[l]))] for l in range(L)]
    b = [[b[l][i] * (1 - lr * wd) - lr * db[l][i] for i in range(len(b[l]))] for l in range(L)]
    if algo == "ddfa":      # eq. 17: B <- B + alpha (mean v d^T - B)
        B = [[[B[l][i][o] + alpha * (dB[l][i][o] - B[l][i][o]) for o in range(n_out)]
              for i in range(len(B[l]))] for l in range(len(B))]
    elif algo == "dkp":     # B <- B - alpha (y e^T + wd B)
        B = [[[B[l][i][o] - alpha * (dB[l][i][o] + wd * B[l][i][o]) for o in range(n_out)]
              for i in range(len(B[l]))] for l in range(len(B))]
    return W, b, B


# Fixed, human-readable numbers for a 2-3-3-2 network.
W0 = [[[0.5, -1.0], [1.0, 0.25], [-0.5, 0.75]],
      [[0.5, -0.25, 1.0], [-1.0, 0.5, 0.25], [0.75, 1.0, -0.5]],
      [[1.0, -0.5, 0.25], [-0.75, 0.5, 1.0]]]
b0 = [[0.1, -0.2, 0.0], [0.0, 0.1, -0.1], [0.05, -0.05]]
B0 = [[[0.5, -0.5], [0.25, 1.0], [-1.0, 0.5]],
      [[1.0, 0.0], [-0.5, 0.5], [0.25, -0.25]]]
XS = [[1.0, 0.5], [-0.5, 1.0]]
LABELS = [1, 0]
VS = [[[1.0, -1.0, 1.0], [-1.0, -1.0, 1.0]], [[-1.0, 1.0, 1.0], [1.0, -1.0, -1.0]]]


def _load(model, W, b, B):
    for layer, Wl, bl in zip(model.layers, W, b):
        layer.W.copy_(torch.tensor(Wl))
        layer.b.copy_(torch.tensor(bl))
    for layer, Bl in zip(model.hidden, B):
        if layer.B is not None:
            layer.B.copy_(torch.tensor(Bl))


def _check(model, W, b, B):
    for l, layer in enumerate(model.layers):
        torch.testing.assert_close(layer.W, torch.tensor(W[l]), rtol=0, atol=1e-6, msg=f"W{l + 1}")
        torch.testing.assert_close(layer.b, torch.tensor(b[l]), rtol=0, atol=1e-6, msg=f"b{l + 1}")
    for l, layer in enumerate(model.hidden):
        if layer.B is None:
            continue
        torch.testing.assert_close(layer.B, torch.tensor(B[l]), rtol=0, atol=1e-6, msg=f"B{l + 1}")


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("algo", ["bp", "dfa", "dkp", "ddfa"])
def test_update_matches_explicit_formulas(algo, batch):
    """Hardware form (SGD, moving-average feedback): every W, b and B entry after one step."""
    lr, alpha = 0.25, 0.125
    cfg = make_cfg(algo, **{"train.lr": lr, "train.alpha": alpha})
    model = FloatModel(cfg, layers=(2, 3, 3, 2))
    B_start = B0 if algo != "bp" else [[[0.0] * 2] * 3] * 2
    _load(model, W0, b0, B_start)
    if algo == "bp":
        B_start = []
    xs, labels, vs = XS[:batch], LABELS[:batch], VS[:batch]
    v = [torch.tensor([vs[n][l] for n in range(batch)]) for l in range(2)]
    onehot = torch.eye(2)[torch.tensor(labels)]
    model.train_step(torch.tensor(xs), onehot, v=v)
    W, b, B = reference_step(W0, b0, B_start, xs, labels, vs, algo, lr, alpha, cfg.weight_decay)
    if algo == "dfa":
        B = B0                                    # fixed feedback
    _check(model, W, b, B)


def test_ddfa_first_step_by_hand():
    """2-3-2 net, B = 0: one step by hand. x = (1, 0), W1 = I-like, v = (1, -1, 1)."""
    cfg = make_cfg("ddfa", **{"train.lr": 0.5, "train.alpha": 0.25})
    model = FloatModel(cfg, layers=(2, 3, 2))
    W1 = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    W2 = [[1.0, 0.0, 1.0], [0.0, 1.0, -1.0]]
    _load(model, [W1, W2], [[0.0] * 3, [0.0] * 2], [[[0.0] * 2] * 3])
    v = [torch.tensor([[1.0, -1.0, 1.0]])]
    # a1 = (1, 0, 1), y1 = (1, 0, 1), d1 = v1 = (1, -1, 1)
    # a2 = W2 y1 = (2, -1); d_L = t2 = W2 d1 = (2, -2)
    # p = softmax(2, -1) = (e^3/(e^3+1), 1/(e^3+1)); label 0: e = (p0 - 1, p1) = (-q, q)
    q = 1.0 / (math.exp(3) + 1.0)
    model.train_step(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]]), v=v)
    # g1 = B1 e = 0 -> W1, b1 unchanged; W2 -= 0.5 e y1^T; b2 -= 0.5 e
    torch.testing.assert_close(model.layers[0].W, torch.tensor(W1))
    torch.testing.assert_close(model.layers[1].W, torch.tensor([[1 + 0.5 * q, 0.0, 1 + 0.5 * q],
                                                                [-0.5 * q, 1.0, -1 - 0.5 * q]]))
    torch.testing.assert_close(model.layers[1].b, torch.tensor([0.5 * q, -0.5 * q]))
    # eq. 17 from B = 0: B1 = 0.25 v1 d_L^T = 0.25 * [[2, -2], [-2, 2], [2, -2]]
    torch.testing.assert_close(model.layers[0].B, torch.tensor([[0.5, -0.5], [-0.5, 0.5], [0.5, -0.5]]))


def test_ddfa_adam_feedback_first_step():
    """Eq. 18-19 with Adam: the first step moves B by alpha towards sign(v d_L^T)."""
    cfg = make_cfg("ddfa", **{"train.setting": "paper", "train.batch_size": 1})
    assert cfg.feedback_update == "adam" and cfg.alpha == 1e-4
    model = FloatModel(cfg, layers=(2, 3, 3, 2))
    _load(model, W0, b0, [[[0.0] * 2] * 3] * 2)
    v = [torch.tensor([VS[0][l]]) for l in range(2)]
    fwd = model.forward(torch.tensor(XS[:1]), v=v)
    targets = model.feedback_targets(fwd)
    model.train_step(torch.tensor(XS[:1]), torch.eye(2)[[LABELS[0]]], v=v)
    for layer, target in zip(model.hidden, targets):
        torch.testing.assert_close(layer.B, 1e-4 * torch.sign(target), rtol=1e-4, atol=1e-9)


def test_dkp_weight_decay_is_applied():
    cfg = make_cfg("dkp")
    assert cfg.weight_decay == 1e-6
    assert make_cfg("ddfa").weight_decay == 0.0


# --------------------------------------------------------------------------------------
# Tangents and BP against autograd (tests only: the model uses neither)
# --------------------------------------------------------------------------------------

def _functional(model, x, eps=None, train=True):
    """y_L as a differentiable function of x, with perturbations eps_l added to y_l."""
    import torch.nn.functional as F
    u = x.view(x.shape[0], 1, 28, 28) if model.cfg.model.conv else x
    k = 0
    for layer in model.layers:
        if layer.flatten:
            u = u.flatten(1)
        a = F.linear(u, layer.W, layer.b) if layer.kind == "fc" else F.conv2d(u, layer.W, layer.b)
        if not layer.hidden:
            return a
        if layer.bn is not None:
            bn = layer.bn
            a = F.batch_norm(a, None, None, bn.gamma, bn.beta, training=True, eps=bn.eps)
        y = torch.relu(a)
        if eps is not None:
            y = y + eps[k]
        k += 1
        u = F.max_pool2d(y, 2) if layer.pool else y


def _params(model):
    ps = model.forward_params()
    return ps


def _tolerance(conv: bool, bn: bool) -> dict:
    """Float32 tolerances for two evaluations of one function in different operation
    orders. With convolutions and batch normalisation over 3-4 samples, normalising by a
    small batch deviation magnifies float32 rounding (which PyTorch's CPU kernels order
    differently on different processors), so that case gets ten times more room."""
    return {"rtol": 1e-3, "atol": 1e-4} if conv and bn else {"rtol": 1e-4, "atol": 1e-5}


@pytest.mark.parametrize("conv,bn", [(False, False), (False, True), (True, False), (True, True)])
def test_tangent_equals_jvp(conv, bn):
    """d_L (eq. 12-13) equals the directional derivative of y_L along v (torch.func.jvp)."""
    torch.manual_seed(0)
    changes = {"train.batchnorm": bn, "train.batch_size": 4, "train.setting": "paper"}
    if conv:
        changes.update({"model.dataset": "mnist", "model.layers": (784, 16, 10), "model.conv": True,
                        "arith.acc_width": 48})
        x = torch.rand(4, 784) * 2 - 1
        layers = None
    else:
        x = torch.randn(4, 5)
        layers = (5, 7, 6, 4)
    model = FloatModel(make_cfg("ddfa", **changes), layers=layers)
    v = model.directions.draw(4)
    fwd = model.forward(x, v=v)
    zeros = tuple(torch.zeros_like(t) for t in v)
    _, jvp = torch.func.jvp(lambda *eps: _functional(model, x, eps), zeros, tuple(v))
    torch.testing.assert_close(fwd.d_L, jvp, **_tolerance(conv, bn))


@pytest.mark.parametrize("conv,bn", [(False, False), (False, True), (True, False), (True, True)])
def test_bp_equals_autograd(conv, bn):
    """The manual backward chain (eq. 5) equals autograd's weight gradients."""
    torch.manual_seed(0)
    changes = {"train.batchnorm": bn, "train.batch_size": 3}
    if conv:
        changes.update({"model.dataset": "mnist", "model.layers": (784, 16, 10), "model.conv": True,
                        "arith.acc_width": 48})
        x = torch.rand(3, 784) * 2 - 1
        layers = None
    else:
        x = torch.randn(3, 5)
        layers = (5, 7, 6, 4)
    model = FloatModel(make_cfg("bp", **changes), layers=layers)
    labels = torch.tensor([0, 2, 1])
    onehot = torch.eye(model.n_out)[labels]
    fwd = model.forward(x)
    deltas = model.bp_deltas(fwd, model.output_error(fwd.y_L, onehot))
    params = _params(model)
    for p in params:
        p.requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(_functional(model, x), labels)
    grads = torch.autograd.grad(loss, params)
    for p in params:
        p.requires_grad_(False)
    by_id = {id(p): g for p, g in zip(params, grads)}
    for layer, rec, (delta, bn_grads) in zip(model.layers, fwd.records, deltas):
        tol = _tolerance(conv, bn)
        torch.testing.assert_close(layer.weight_grad(delta, rec.u), by_id[id(layer.W)], **tol)
        torch.testing.assert_close(layer.bias_grad(delta), by_id[id(layer.b)], rtol=tol["rtol"], atol=tol["atol"] / 10)
        if bn_grads is not None:
            torch.testing.assert_close(bn_grads[0], by_id[id(layer.bn.gamma)], rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(bn_grads[1], by_id[id(layer.bn.beta)], rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------------------
# DDFA's feedback estimate converges to the expected Jacobian (eqs. 14-16)
# --------------------------------------------------------------------------------------

def _expected_jacobians(model, X):
    """E_x[dy_L/dy_l] per hidden layer, as (n_l, n_L) matrices (the shape of B_l)."""
    out = []
    for k, layer in enumerate(model.hidden):
        J = torch.zeros(layer.n_out, model.n_out)
        for x in X:
            x = x[None]
            eps = [torch.zeros(1, l.n_out) for l in model.hidden]

            def f(e_k, x=x, eps=eps, k=k):
                e = list(eps)
                e[k] = e_k
                return _functional(model, x, e)[0]
            J += torch.autograd.functional.jacobian(f, eps[k])[:, 0, :].T
        out.append(J / len(X))
    return out


@pytest.mark.parametrize("directions", ["gaussian", "rademacher"])
def test_ddfa_feedback_converges_to_expected_jacobian(directions):
    torch.manual_seed(0)
    cfg = make_cfg("ddfa", **{"train.directions": directions, "train.alpha": 2 ** -11})
    model = FloatModel(cfg, layers=(4, 6, 5, 3))
    X = torch.randn(16, 4)
    J = _expected_jacobians(model, X)
    # Batch mean of v d_L^T over many directions (W frozen): eq. 16.
    fwd = model.forward(X.repeat(4000, 1))
    for est, j in zip(model.feedback_targets(fwd), J):
        assert torch.linalg.norm(est - j) / torch.linalg.norm(j) < 0.06
    # The moving average of eq. 17, one sample at a time, W frozen.
    onehot = torch.zeros(1, 3)
    weights = [l.W.clone() for l in model.layers]
    for step in range(16000):
        x = X[step % 16][None]
        fwd = model.forward(x)
        model.update_feedback(fwd, model.output_error(fwd.y_L, onehot))
    for layer, j in zip(model.hidden, J):
        assert torch.linalg.norm(layer.B - j) / torch.linalg.norm(j) < 0.2
    assert all(torch.equal(l.W, w) for l, w in zip(model.layers, weights))


# --------------------------------------------------------------------------------------
# Alignment (eq. 20), order, zero init, configuration errors
# --------------------------------------------------------------------------------------

def test_alignment_known_angles():
    a = torch.tensor([1.0, 0.0])
    assert angle_deg(a, a) == pytest.approx(0.0, abs=1e-6)
    assert angle_deg(a, 3 * a) == pytest.approx(0.0, abs=1e-6)
    assert angle_deg(a, torch.tensor([0.0, 2.0])) == pytest.approx(90.0)
    assert angle_deg(a, -a) == pytest.approx(180.0)
    assert angle_deg(a, torch.tensor([1.0, 1.0])) == pytest.approx(45.0)
    assert angle_deg(torch.ones(2, 3), torch.ones(6)) == pytest.approx(0.0, abs=1e-6)
    assert math.isnan(angle_deg(a, torch.zeros(2)))


def test_bp_alignment_is_zero_and_dfa_is_not():
    torch.manual_seed(0)
    for algo, check in (("bp", lambda x: x < 1e-3), ("dfa", lambda x: x > 5)):
        model = FloatModel(make_cfg(algo), layers=(5, 7, 6, 4))
        _, angles = model.train_step(torch.randn(8, 5), torch.eye(4)[torch.arange(8) % 4], probe=True)
        assert len(angles) == 2 and all(check(a) for a in angles)


def test_epoch_order():
    o = [next(it) for it in [epoch_orders(10, 3)] for _ in range(3)]
    assert sorted(o[0].tolist()) == list(range(10))
    assert torch.equal(epoch_order(10, 3, 2), o[2]) and torch.equal(epoch_order(10, 3, 0), o[0])
    assert not torch.equal(o[0], o[1])
    assert derived_seed(0, "init") != derived_seed(0, "directions")
    assert default_align_every(938) == 10 and default_align_every(5) == 1


def test_same_seed_same_result_and_init():
    from ddfa.data import load_dataset
    ds = load_dataset("digits")
    cfg = make_cfg("ddfa", **{"train.epochs": 1})
    r1, r2 = train_float(cfg, ds, progress=False), train_float(cfg, ds, progress=False)
    assert r1["history"][0]["test_accuracy"] == r2["history"][0]["test_accuracy"]
    m = FloatModel(cfg)
    bound = 1 / math.sqrt(64)
    assert m.layers[0].W.abs().max() <= bound and m.layers[0].W.abs().max() > 0.9 * bound
    assert m.layers[0].B.abs().max() == 0                       # DDFA: B starts at 0
    d = FloatModel(make_cfg("dfa"))
    assert d.layers[0].B.abs().max() <= math.sqrt(6 / 32)      # DFA: Kaiming-uniform


@pytest.mark.parametrize("algo", ["dfa", "ddfa"])
def test_zero_init_stalls(algo):
    """The paper's zero initialisation never learns with ReLU: relu'(0) = 0 zeroes every
    hidden update and y = relu(0) = 0 starves the output weights; only b_L moves."""
    from ddfa.data import load_dataset
    cfg = make_cfg(algo, **{"train.init": "zero", "train.epochs": 2})
    result, model = train_float(cfg, load_dataset("digits"), progress=False, return_model=True)
    assert all(float(l.W.abs().max()) == 0.0 for l in model.layers)
    assert float(model.layers[0].b.abs().max()) == 0.0
    assert result["test_accuracy"] < 0.2


def test_batchnorm_needs_a_batch():
    with pytest.raises(ConfigError, match="train.batchnorm"):
        FloatModel(make_cfg("ddfa", **{"train.batchnorm": True}))


def test_directions_stream_is_blocks_in_order():
    """Drawing in steps returns the generator's blocks in order, whatever the timing of
    the background thread; Rademacher directions are +-1 with E[v v^T] = I."""
    from golden.float_model import Directions
    d = Directions([(5,), (3,)], "gaussian", torch.Generator().manual_seed(7), block=256)
    rows = torch.cat([d.draw(64)[0] for _ in range(6)])           # 4 draws per block
    g = torch.Generator().manual_seed(7)
    first = torch.randn(256, 5, generator=g)
    torch.randn(256, 3, generator=g)
    second = torch.randn(256, 5, generator=g)
    assert torch.equal(rows[:256], first) and torch.equal(rows[256:], second[:128])
    r = Directions([(16,)], "rademacher", torch.Generator().manual_seed(1), block=4096).draw(4096)[0]
    assert set(r.unique().tolist()) == {-1.0, 1.0}
    assert (r.T @ r / 4096 - torch.eye(16)).abs().max() < 0.1


def test_fused_adam_matches_torch_optim():
    """FusedAdam calls torch's fused kernel directly: the same numbers, bit for bit, as
    torch.optim.Adam(fused=True), over two groups, with weight decay, a learning-rate
    change between steps and a parameter without a gradient on one step."""
    from golden.float_model import ADAM, FusedAdam
    g = torch.Generator().manual_seed(3)
    ours = [torch.randn(7, 5, generator=g), torch.randn(5, generator=g), torch.randn(4, 3, generator=g)]
    theirs = [p.clone() for p in ours]
    groups = lambda ps: [{"params": ps[:2], "lr": 1e-3, "name": "forward"},
                         {"params": ps[2:], "lr": 1e-4, "name": "feedback"}]
    a = FusedAdam(groups(ours), weight_decay=1e-6, **ADAM)
    b = torch.optim.Adam(groups(theirs), weight_decay=1e-6, fused=True, **ADAM)
    for step in range(5):
        grads = [torch.randn(p.shape, generator=g) for p in ours]
        for k, (p, q, gr) in enumerate(zip(ours, theirs, grads)):
            p.grad = None if (step == 2 and k == 1) else gr.clone()
            q.grad = None if (step == 2 and k == 1) else gr.clone()
        if step == 3:
            a.param_groups[0]["lr"] = b.param_groups[0]["lr"] = 5e-4
        a.step()
        b.step()
        for p, q in zip(ours, theirs):
            assert torch.equal(p, q)
    assert not torch.equal(ours[0], theirs[0] + 1e-3)   # the comparison can fail


def test_stacked_feedback_is_the_per_layer_formula():
    """B_all stacks every hidden layer's B_l (views), one matmul gives every g_l = B_l e
    (eq. 6) and the DDFA target is mean_n v_l d_L^T per layer (eq. 16)."""
    model = FloatModel(make_cfg("ddfa", **{"train.setting": "paper"}), layers=(6, 5, 4, 3))
    torch.nn.init.normal_(model.B_all, generator=torch.Generator().manual_seed(0))
    assert model.hidden[0].B.data_ptr() == model.B_all.data_ptr()
    assert model.hidden[1].B.shape == (4, 3)
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(1))
    fwd = model.forward(x)
    e = torch.randn(8, 3, generator=torch.Generator().manual_seed(2))
    for layer, rec, (delta, _) in zip(model.hidden, fwd.records, model.dfa_deltas(fwd, e)):
        torch.testing.assert_close(delta, (e @ layer.B.T) * rec.mask, rtol=1e-6, atol=1e-7)
    for rec, target in zip(fwd.records, model.feedback_targets(fwd)):
        torch.testing.assert_close(target, rec.v.T @ fwd.d_L / 8, rtol=1e-5, atol=1e-7)
