from toy_bars import Bars
from toy_mae import MeanAbsoluteError
from toy_pca import PcaEncoder
from toy_unigram import UnigramPrior

from anytime_bench.testing import parametrize_checks


@parametrize_checks([
    ("dataset", Bars),
    ("encoder", PcaEncoder),  # Config() defaults, on the kit's toy 8x8 images
    ("prior", UnigramPrior, UnigramPrior.Config(smoothing=1.0)),
    ("metric", MeanAbsoluteError),
])
def test_conformance(check):
    check()
