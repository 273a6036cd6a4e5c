"""Training from the dataset store (golden side): the layout, the input table, the store
image, the epoch order and the fixed-point model trained from the store
(``docs/ARITHMETIC.md``, "Training from the dataset store")."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ddfa.cli import main
from ddfa.config import (MAX_SPLIT_RECORDS, STORE_CAPACITY_WORDS, Fixed, StoreError, StoreLayout, default_config,
                         order_seed)
from ddfa.data import DataError, load_coded, load_config_coded, load_config_dataset
from golden.arith import Lfsr, lfsr_mask, quantize
from golden.fixed import FixedModel
from golden.onchip import (StoreView, epoch_keys, epoch_permutation, evaluate, input_table, permutation,
                           store_image, table_inputs, train_epochs)

SHARED = Path("/work/shared/data")


def icebreaker(**changes):
    cfg = default_config("icebreaker")
    return cfg.replace(**changes) if changes else cfg


def file_config(path, n0: int, classes: int, inputs: str = "pm1"):
    return icebreaker(**{"model.dataset": str(path), "model.layers": (n0, 8, classes), "model.inputs": inputs,
                         "hardware.pes": (1, 1)})


# --------------------------------------------------------------------------------------
# The epoch order
# --------------------------------------------------------------------------------------

def spec_permutation(n: int, a: int, b: int) -> list[int]:
    """The permutation as the shared definition words it, one index at a time."""
    k = max(1, (n - 1).bit_length())
    M = (1 << k) - 1
    a, b = a & M, b & M

    def F(x):
        x = (x + a) & M
        x ^= x >> 3
        x = (5 * x + b) & M
        x ^= x >> 5
        return x

    out = []
    for i in range(n):
        x = F(i)
        while x >= n:
            x = F(x)
        out.append(x)
    return out


def test_permutation_small_case_by_hand():
    """N = 5: k = 3, M = 7, a = 0xABCD & 7 = 5, b = 0x1234 & 7 = 4; x >> 3 and x >> 5
    are 0 below 8, so F(x) = (5 ((x + 5) & 7) + 4) & 7: F(0..7) = 5, 2, 7, 4, 1, 6, 3, 0.
    perm(0) = F(0) = 5 -> F(5) = 6 -> F(6) = 3; perm(1) = 2; perm(2) = 7 -> F(7) = 0;
    perm(3) = 4; perm(4) = 1."""
    assert permutation(5, 0xABCD, 0x1234).tolist() == [3, 2, 0, 4, 1]


def test_permutation_follows_the_definition():
    """The vectorised permutation equals the definition's words, index by index, for
    sizes whose k makes both shifts matter, and any key."""
    rng = np.random.RandomState(1)
    for n in [1, 2, 3, 7, 8, 9, 33, 100, 255, 256, 257, 1000, 1437, 4097]:
        for _ in range(3):
            a, b = (int(v) for v in rng.randint(0, 1 << 16, 2))
            assert permutation(n, a, b).tolist() == spec_permutation(n, a, b), (n, a, b)


def _assert_bijection(p: np.ndarray, n: int) -> None:
    assert p.shape == (n,) and p.min() >= 0 and p.max() < n, n
    assert (np.bincount(p, minlength=n) == 1).all(), n


def test_permutation_is_a_bijection_up_to_the_store_capacity():
    """Epochs 0 and 1 permute [0, N) for every N from 1 to the icebreaker store's
    capacity in records (digits' records, the smaller table), and for the sizes around
    every power of two up to 65,535 records; the two epochs' orders differ for every
    N > 8."""
    cfg = icebreaker(**{"model.inputs": "pm1"})
    capacity = cfg.store.max_records
    assert capacity == (65536 - 32) // 33 == 1984
    keys = [epoch_keys(cfg, e) for e in (0, 1)]
    sizes = list(range(1, capacity + 1))
    sizes += sorted({n for k in range(11, 17) for n in ((1 << k) - 1, 1 << k, (1 << k) + 1)
                     if capacity < n <= MAX_SPLIT_RECORDS})
    same = []
    for n in sizes:
        p0, p1 = (permutation(n, a, b) for a, b in keys)
        _assert_bijection(p0, n)
        _assert_bijection(p1, n)
        if np.array_equal(p0, p1):
            same.append(n)
    # k <= 3 leaves 64 keys: seed 0's epochs 0 and 1 share a & 7 and b & 7
    assert same == list(range(1, 9)), same


def test_epoch_keys_are_the_lfsr_states():
    """s_0 = order_seed, 32 steps of the 32-bit Galois LFSR before each epoch; epoch e's
    key is s_(e+1)'s low and high halves."""
    cfg = icebreaker(**{"model.seed": 5})
    assert cfg.order_seed == (0x9E3779B9 * 6) % 2**32
    s = cfg.order_seed
    mask = lfsr_mask(32)
    assert mask == 0x80200003
    for e in range(4):
        for _ in range(32):
            s = (s >> 1) ^ (mask if s & 1 else 0)
        assert epoch_keys(cfg, e) == (s & 0xFFFF, s >> 16), e
    lf = Lfsr(32, icebreaker().order_seed)
    for _ in range(64):
        lf.step()
    assert epoch_keys(icebreaker(), 1) == (lf.state & 0xFFFF, lf.state >> 16)
    assert icebreaker().order_seed == 0x9E3779B9
    assert [epoch_keys(icebreaker(), e) for e in (0, 1)] == [(16803, 60956), (45395, 44852)]
    assert np.array_equal(epoch_permutation(cfg, 100, 2), permutation(100, *epoch_keys(cfg, 2)))


def test_order_seed_is_never_zero():
    assert order_seed(SimpleNamespace(model=SimpleNamespace(seed=2**32 - 1))) == 1
    assert order_seed(SimpleNamespace(model=SimpleNamespace(seed=0))) == 0x9E3779B9


# --------------------------------------------------------------------------------------
# The layout
# --------------------------------------------------------------------------------------

def test_layout_sizes():
    pm1 = icebreaker(**{"model.inputs": "pm1"}).store
    assert pm1 == StoreLayout(capacity_words=65536, code_bits=5, table_rows=1, n_inputs=64)
    assert (pm1.codes, pm1.table_words, pm1.record_words, pm1.train_base) == (32, 32, 33, 32)
    assert pm1.words(1437, 360) == 32 + 1797 * 33 == 59333
    assert pm1.record_address(1437) == 32 + 1437 * 33 and pm1.table_address(17, 9) == 9
    std = icebreaker().store                                # the default: standardize
    assert (std.table_rows, std.table_words, std.words(1437, 360)) == (64, 2048, 2048 + 1797 * 33)
    assert std.table_address(17, 9) == 17 * 32 + 9
    ulx = default_config("ulx3s-85f").store                  # mnist, pm1
    assert ulx == StoreLayout(capacity_words=16_777_216, code_bits=8, table_rows=1, n_inputs=784, kind="sdram")
    assert (ulx.table_words, ulx.record_words) == (256, 393)
    odd = file_config("x.npz", 3, 2).store                   # a file: one table row per input
    assert (odd.code_bits, odd.table_rows, odd.table_words, odd.record_words) == (8, 3, 768, 2)
    assert STORE_CAPACITY_WORDS == {"icebreaker": 65536, "ulx3s-85f": 16_777_216}
    for board in ("upduino-v3", "orangecrab-25f", "none"):
        assert icebreaker(**{"hardware.board": board}).store is None, board


def test_layout_refuses_what_does_not_fit():
    lay = icebreaker(**{"model.inputs": "pm1"}).store
    lay.check(1437, 547)                                   # 1,984 records: 65,504 words, then the header
    assert (lay.header_base, lay.max_records) == (65_532, 1_984)
    with pytest.raises(StoreError, match=r"needs 65,537 store words .*1,437 \+ 548 records of 33 words.*"
                                         r"holds 65,532 before its header.*at most 1,984 samples"):
        lay.check(1437, 548)
    big = StoreLayout(16_777_216, 8, 1, 2)
    big.check(65535, 65535)
    with pytest.raises(StoreError, match="65,536 training samples.*at most 65,535"):
        big.check(65536, 0)
    with pytest.raises(StoreError, match="65,536 test samples"):
        big.check(0, 65536)
    cfg = icebreaker(**{"model.inputs": "pm1"})
    coded = load_config_coded(cfg)
    tiled = coded.subset(train=np.arange(1625) % coded.n_train)
    with pytest.raises(StoreError, match="digits needs 65,537 store words"):
        store_image(cfg, tiled)
    with pytest.raises(StoreError, match="'none' has no dataset store"):
        store_image(cfg.replace(**{"hardware.board": "none"}), coded)
    ulx = default_config("ulx3s-85f")                       # act Q8.10: 18 bits
    with pytest.raises(StoreError, match="'arith.act': 18-bit inputs do not fit the dataset store's 16-bit"):
        input_table(ulx, coded)


# --------------------------------------------------------------------------------------
# The input table
# --------------------------------------------------------------------------------------

def assert_table_is_quantize_input(cfg, chunk: int = 5000):
    """Every input of every sample of both splits, read through the table, equals
    quantize_input of load_dataset's value; every code (occurring or not) holds the
    quantised scaling formula."""
    coded = load_config_coded(cfg)
    data = load_config_dataset(cfg)
    table = input_table(cfg, coded)
    lay = cfg.store
    assert table.shape == (lay.table_words,)
    model = FixedModel(cfg)
    for split in ("train", "test"):
        codes, x = getattr(coded, f"x_{split}"), getattr(data, f"x_{split}")
        assert np.array_equal(getattr(coded, f"y_{split}"), getattr(data, f"y_{split}").numpy())
        for i in range(0, len(codes), chunk):
            got = table_inputs(lay, table, codes[i:i + chunk])
            assert np.array_equal(got, model.quantize_input(x[i:i + chunk]).numpy()), (cfg.model.dataset, split, i)
    rows = lay.table_rows
    for t in range(rows):
        for c in range(lay.codes):
            grid = np.full((1, lay.n_inputs), c, dtype=coded.x_train.dtype)
            want = quantize(coded.scaling(grid), cfg.arith.act)[0, t if rows > 1 else 0]
            if rows == 1:
                assert (quantize(coded.scaling(grid), cfg.arith.act) == want).all()
            assert table[t * lay.codes + c] == want, (t, c)
    return table


@pytest.mark.parametrize("inputs", ["pm1", "standardize"])
def test_digits_table_is_quantize_input(inputs):
    table = assert_table_is_quantize_input(icebreaker(**{"model.inputs": inputs}))
    if inputs == "pm1":
        assert icebreaker().arith.act == Fixed(16, 9)       # code c: c / 8 - 1, times 2**9
        assert table.tolist() == [64 * c - 512 for c in range(32)]
    else:
        assert len(set(table.tolist())) > 32


@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="MNIST is not in /work/shared/data")
def test_mnist_table_is_quantize_input(monkeypatch):
    monkeypatch.setenv("DDFA_DATA_DIR", str(SHARED))
    cfg = default_config("ulx3s-85f").replace(**{"arith.act": Fixed(16, 10)})   # 16-bit table words
    assert (cfg.model.dataset, cfg.model.inputs) == ("mnist", "pm1")
    assert_table_is_quantize_input(cfg, chunk=10000)


def _ints_npz(path: Path, n0: int = 5, top: int = 255) -> Path:
    rng = np.random.RandomState(7)                          # each feature its own training range
    np.savez(path, x_train=rng.randint(0, 100, (120, n0)) + 20 * np.arange(n0), y_train=rng.randint(0, 3, 120),
             x_test=rng.randint(0, top + 1, (30, n0)), y_test=rng.randint(0, 3, 30))
    return path


@pytest.mark.parametrize("inputs", ["pm1", "standardize"])
def test_file_table_is_quantize_input(tmp_path, inputs):
    """A file of integer features: one table row per input (its min-max), test codes
    outside the training range clipped as load_dataset clips them."""
    path = _ints_npz(tmp_path / "ints.npz")
    cfg = file_config(path, 5, 3, inputs)
    assert cfg.store.table_rows == 5
    table = assert_table_is_quantize_input(cfg)
    assert len({tuple(table[t * 256:(t + 1) * 256]) for t in range(5)}) == 5


def test_data_that_are_not_codes_are_refused(tmp_path):
    rng = np.random.RandomState(0)
    x = rng.randint(0, 256, (20, 4)).astype(np.float64)
    np.savez(tmp_path / "frac.npz", x_train=x + 0.5, y_train=np.zeros(20), x_test=x, y_test=np.zeros(20))
    with pytest.raises(DataError, match=r"frac.npz: training feature 0 of sample 0 is .*\.5, not an integer code "
                                        r"0\.\.255.*Fix: give integer features 0\.\.255"):
        load_coded(str(tmp_path / "frac.npz"))
    x[3, 2] = 256
    np.savez(tmp_path / "wide.npz", x_train=x, y_train=np.zeros(20), x_test=x, y_test=np.zeros(20))
    with pytest.raises(DataError, match="feature 2 of sample 3 is 256, not an integer code 0..255"):
        load_coded(str(tmp_path / "wide.npz"))
    d = load_coded("digits")
    assert d.code_bits == 5 and d.codes == 32 and d.x_train.dtype == np.uint8 and d.x_train.max() == 16


# --------------------------------------------------------------------------------------
# The store image
# --------------------------------------------------------------------------------------

def test_store_image_words_and_round_trip():
    cfg = icebreaker()
    coded = load_config_coded(cfg)
    image = store_image(cfg, coded)
    lay = cfg.store
    assert len(image) == lay.words(coded.n_train, coded.n_test) == 2048 + 1797 * 33
    assert all(0 <= w <= 0xFFFF for w in image)
    table = input_table(cfg, coded)
    assert image[:2048] == [v & 0xFFFF for v in table.tolist()]
    r = lay.train_base                                      # training record 0, by hand
    x0, y0 = coded.x_train[0].tolist(), int(coded.y_train[0])
    assert image[r] == x0[0] | x0[1] << 8 and image[r + 31] == x0[62] | x0[63] << 8
    assert image[r + 32] == y0                              # the label, its high half 0
    t = lay.record_address(coded.n_train + 359)             # the last test record
    assert image[t + 32] == int(coded.y_test[359]) and t + 33 == len(image)
    view = StoreView(cfg, image, coded.n_train, coded.n_test)
    codes, labels = view.records(0, coded.n_train + coded.n_test)
    assert np.array_equal(codes, np.concatenate([coded.x_train, coded.x_test]))
    assert np.array_equal(labels, np.concatenate([coded.y_train, coded.y_test]))
    assert np.array_equal(view.table, table)


def test_store_image_odd_record(tmp_path):
    """n_0 = 3: four bytes, two words, no padding; n_0 = 4: the label alone in word 2."""
    for n0, R in ((3, 2), (4, 3)):
        path = _ints_npz(tmp_path / f"ints{n0}.npz", n0)
        cfg = file_config(path, n0, 3)
        coded = load_config_coded(cfg)
        image = store_image(cfg, coded)
        base = n0 * 256
        x, y = coded.x_train[1].tolist(), int(coded.y_train[1])
        rec = image[base + R:base + 2 * R]
        assert rec[0] == x[0] | x[1] << 8
        assert rec[1] == (x[2] | y << 8 if n0 == 3 else x[2] | x[3] << 8)
        if n0 == 4:
            assert rec[2] == y
        view = StoreView(cfg, image, coded.n_train, coded.n_test)
        codes, labels = view.records(0, coded.n_train)
        assert np.array_equal(codes, coded.x_train) and np.array_equal(labels, coded.y_train)


# --------------------------------------------------------------------------------------
# Training and evaluation from the store
# --------------------------------------------------------------------------------------

def test_training_from_the_store_is_fixed_model_steps():
    """Two epochs of 150 digits training records (300 steps) from the store image, then
    one more epoch starting at epoch 3: the state equals FixedModel.step run on the
    permuted records' quantize_input values (load_dataset's float path, not the table);
    evaluation counts the reference's correct predictions."""
    cfg = icebreaker()
    data = load_config_dataset(cfg)
    coded = load_config_coded(cfg).subset(train=slice(0, 150), test=slice(0, 40))
    image = store_image(cfg, coded)
    chip, ref = FixedModel(cfg), FixedModel(cfg)
    x_ref = ref.quantize_input(data.x_train[:150])
    y_ref = data.y_train[:150].tolist()
    logits = train_epochs(chip, image, 150, 40, first_epoch=0, epochs=2)
    logits += train_epochs(chip, coded, first_epoch=3, epochs=1)
    key = f"y{ref.L}"
    for k, e in enumerate((0, 1, 3)):
        for step, i in enumerate(epoch_permutation(cfg, 150, e).tolist()):
            out = ref.step(x_ref[i], y_ref[i])
            assert np.array_equal(logits[k][step], out[key].numpy()), (e, step)
    assert chip.steps == ref.steps == 450
    assert chip.state_hash() == ref.state_hash()
    want = int((ref.predict_batch(ref.quantize_input(data.x_test[:40])) == data.y_test[:40]).sum())
    assert evaluate(chip, image, 150, 40) == evaluate(chip, coded) == want
    assert chip.state_hash() == ref.state_hash()           # evaluation changes nothing


def test_train_on_chip_command(tmp_path, capsys):
    """``ddfa train --model fixed --on-chip``: one epoch from the store, the state of
    train_epochs on the configuration's data set; the refusals are one line."""
    path = tmp_path / "r.json"
    assert main(["train", "--board", "icebreaker", "--model", "fixed", "--on-chip", "--epochs", "1",
                 "--no-progress", "--json", str(path)]) == 0
    assert "(hardware, seed 0 on-chip): test accuracy" in capsys.readouterr().out
    r = json.loads(path.read_text())
    cfg = icebreaker(**{"train.epochs": 1})
    model = FixedModel(cfg)
    train_epochs(model, load_config_coded(cfg), epochs=1)
    assert r["on_chip"] and r["model"] == "fixed" and r["store_words"] == 2048 + 1797 * 33
    assert r["state_hash"] == model.state_hash()
    assert r["test_correct"] == evaluate(model, load_config_coded(cfg)) and r["test_accuracy"] == round(
        r["test_correct"] / 360, 6)
    for extra, message in ((["--model", "float"], "'--on-chip': only the fixed-point model"),
                           (["--model", "fixed", "--set", "hardware.board=\"none\""], "'none' has no dataset store")):
        assert main(["train", "--board", "icebreaker", "--on-chip", "--epochs", "1", "--no-progress"] + extra) == 2
        assert message in capsys.readouterr().err
