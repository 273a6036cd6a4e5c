"""The one configuration object.

Everything the project generates or trains -- the float golden model, the fixed-point
golden model, the Amaranth processor, the cocotb benches and the board builds -- reads
one :class:`Config`, validated when it is made.

Modules
-------
:mod:`~ddfa.config.schema`
    The sections and their fields, :class:`ConfigError`, :class:`Fixed`.
:mod:`~ddfa.config.validate`
    The rules, one small check per concern.
:mod:`~ddfa.config.core`
    :class:`Config` and every quantity derived from it; TOML out.
:mod:`~ddfa.config.files`
    Embedded defaults and TOML files in.
:mod:`~ddfa.config.boards`
    The board database: boards, families, their resources and PLL limits.
:mod:`~ddfa.config.pll`
    The PLL divider search of each family (the clocks a board makes).
:mod:`~ddfa.config.memory`
    The memory-mapping policy: banking, block-RAM slicing and counting.
:mod:`~ddfa.config.store`
    The dataset store's layout (:class:`StoreLayout`) and the epoch-key seed.
:mod:`~ddfa.config.identity`
    The configuration hash (INFO) and :func:`config_diff`.
"""

from .boards import BOARDS, DEFAULT_BAUD, DP16KD_ASPECTS, FAMILIES, Board, Family, PLLLimits
from .core import Config
from .files import DEFAULTS, default_config, load_config
from .identity import HASHED_FIELDS, UNHASHED_FIELDS, config_diff, config_hash, hashed_values
from .memory import BRAM_RESERVE, aspect_slices, bank_address, bank_depth, split_banks
from .pll import PLLError, board_makes_clock, pll_for
from .store import (HEADER_WORDS, MAX_SPLIT_RECORDS, STORE_CAPACITY_WORDS, STORE_WORD_BITS, StoreError, StoreLayout, code_bits,
                    dataset_id, order_seed, store_layout)
from .schema import (ALGORITHMS, DATASET_FILE_KINDS, DATASET_SHAPES, DATASETS, INPUT_SCALINGS, LFSR_TAPS,
                     PROCESSOR_ALGORITHMS, SECTIONS, STD_FLOOR, ArithConfig, ConfigError, Fixed, HardwareConfig, ModelConfig, TrainConfig,
                     dataset_is_file, parse_arch)

__all__ = [
    "ConfigError", "Fixed", "ModelConfig", "TrainConfig", "ArithConfig", "HardwareConfig", "SECTIONS",
    "ALGORITHMS", "PROCESSOR_ALGORITHMS", "DATASETS", "DATASET_FILE_KINDS", "DATASET_SHAPES", "dataset_is_file", "INPUT_SCALINGS", "STD_FLOOR", "LFSR_TAPS", "parse_arch",
    "Config", "DEFAULTS", "load_config", "default_config",
    "BOARDS", "Board", "FAMILIES", "Family", "PLLLimits", "DP16KD_ASPECTS", "DEFAULT_BAUD",
    "PLLError", "pll_for", "board_makes_clock",
    "BRAM_RESERVE", "aspect_slices", "bank_address", "bank_depth", "split_banks",
    "StoreLayout", "StoreError", "STORE_CAPACITY_WORDS", "STORE_WORD_BITS", "MAX_SPLIT_RECORDS", "HEADER_WORDS", "code_bits", "dataset_id",
    "store_layout", "order_seed",
    "HASHED_FIELDS", "UNHASHED_FIELDS", "hashed_values", "config_hash", "config_diff",
]
