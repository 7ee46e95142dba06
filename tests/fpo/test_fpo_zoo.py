"""Coverage: realistic models from plain torch.nn run forward and backward with no unknown op."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import fpo_zoo as zoo  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import greenprint as gp  # noqa: E402
from greenprint.fpo import example_inputs  # noqa: E402

ZOO = {
    "resnet": (zoo.resnet_tiny, lambda d: (torch.randn(2, 3, 32, 32, device=d),)),
    "vit": (zoo.vit_tiny, lambda d: (torch.randn(2, 3, 16, 16, device=d),)),
    "gpt_rmsnorm_swiglu": (
        zoo.gpt_tiny,
        lambda d: (torch.zeros(2, 8, dtype=torch.long, device=d),),
    ),
    "unet_transposed_interp": (zoo.unet_tiny, lambda d: (torch.randn(1, 3, 16, 16, device=d),)),
    "lstm_lm": (zoo.lstm_tiny, lambda d: (torch.zeros(2, 7, dtype=torch.long, device=d),)),
    "message_passing": (zoo.graph_tiny, lambda d: zoo.graph_inputs(device=d)),
    "mobilenet_depthwise": (zoo.mobilenet_tiny, lambda d: (torch.randn(2, 3, 16, 16, device=d),)),
    "checkpointed_mlp": (zoo.checkpointed_tiny, lambda d: (torch.randn(4, 4, device=d),)),
    "moe_grouped_mm": (
        zoo.moe_tiny,
        lambda d: (torch.randn(2, 5, 16, device=d, dtype=torch.bfloat16),),
    ),
    "transformer_encoder": (
        zoo.transformer_encoder_tiny,
        lambda d: (torch.randn(2, 6, 16, device=d),),
    ),
}


@pytest.mark.parametrize("device", ["cpu", "meta"])
@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_model_forward_backward_and_a_training_step_have_a_rule_for_every_op(name, device):
    factory, inputs = ZOO[name]
    torch.manual_seed(0)
    model = factory().to(device)
    result = gp.count_fpo(model, *inputs(device), strict=True)
    assert result.unknown_ops == {}
    assert result.forward_total > 0 and result.backward_total > result.forward_total / 2
    assert result.by_module[""] == result.total
    step = gp.training_fpo(model, inputs(device), 10, optimizer="adamw", strict=True)
    assert step.unknown_ops == {} and step.optimizer_total > 0


def test_resnet50_forward_at_224_matches_flopcountermode_and_the_known_size():
    with torch.device("meta"):
        model = zoo.resnet50().eval()
    (x,) = example_inputs((1, 3, 224, 224))
    result = gp.count_fpo(model, x, backward=False, strict=True)
    with FlopCounterMode(display=False) as f:
        model(x)
    assert result.matmul_total == f.get_total_flops()
    assert result.params == 25_557_032  # torchvision's resnet50
    assert 8.1e9 < result.matmul_total < 8.3e9  # the well-known 4.1 GMAC
    assert result.total > result.matmul_total  # + batch norm, ReLU, pooling, bias adds


# -- hand-checked totals ---------------------------------------------------------------------


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_mobilenet_depthwise_separable_total_by_hand(device):
    """zoo.mobilenet_tiny on (2, 3, 16, 16), forward + backward seeded with ones.

    A convolution's products are ``2 * N * numel(weight) * output positions`` (N = 2):
      stem 3->8, 3x3, stride 2, 8x8 out:      2*2*(8*3*9)*64   = 55,296
      dw1 8 groups, 3x3, 8x8:                  2*2*(8*1*9)*64   = 18,432
      pw1 8->16, 1x1, 8x8:                     2*2*(16*8)*64    = 32,768
      dw2 16 groups, 3x3, stride 2, 4x4:       2*2*(16*1*9)*16  =  9,216
      pw2 16->32, 1x1, 4x4:                    2*2*(32*16)*16   = 32,768   sum 148,480
    Batch norm (training, running stats, ATen's CPU kernel): 7 per element + 18 per channel,
    over the five conv outputs of 1024, 1024, 2048, 512, 1024 elements (5632) and 8, 8, 16, 16,
    32 channels (80): 7*5632 + 18*80 = 40,864 (40,304 before s34's audit of the kernel).
    ReLU: 5,632. AdaptiveAvgPool2d(1) runs as a mean: 1024 adds + 64 divisions = 1,088.
    Linear 32->10: 2*2*32*10 + 20 bias = 1,300. Forward: 197,364.

    Backward: Linear: two products 2*1,280 + bias grad 20 = 2,580; the mean's backward divides
    the expanded gradient: 1,024; ReLU: 5,632; batch norm (contiguous gradients from ReLU):
    10 per element + 5 per channel = 10*5632 + 5*80 = 56,720 (73,376 before s34);
    convolutions: grad_weight of every conv and grad_input of all but the stem (the image
    needs no gradient), each the forward's products:
    55,296 + 2*(18,432 + 32,768 + 9,216 + 32,768) = 241,664. Backward: 307,620.
    """
    torch.manual_seed(0)
    model = zoo.mobilenet_tiny().to(device)
    result = gp.count_fpo(model, torch.randn(2, 3, 16, 16, device=device), strict=True)
    assert result.forward_total == 148_480 + 40_864 + 5_632 + 1_088 + 1_300 == 197_364
    assert result.backward_total == 2_580 + 1_024 + 5_632 + 56_720 + 241_664 == 307_620
    assert result.matmul_total == 148_480 + 2 * 1_280 + 1_280 + 241_664
    assert result.by_module[""] == result.total == 504_984
    assert result.unknown_ops == {}


@pytest.mark.parametrize("device", ["cpu", "meta"])
@pytest.mark.parametrize("use_reentrant", [False, True])
def test_checkpointed_blocks_total_by_hand(device, use_reentrant):
    """zoo.CheckpointedMLP on (4, 4): stem Linear(4, 8), two blocks Linear(8, 16), ReLU,
    Linear(16, 8) under torch.utils.checkpoint, head Linear(8, 2); backward seeded with ones.

    Forward: stem 2*4*4*8 + 32 = 288; each block 1,088 + 64 + 1,056 = 2,208; head 128 + 8 =
    136: 4,840. Backward: stem grad_weight 256 + bias 32 = 288 (the input needs no gradient);
    each block: b 1,024 + 1,024 + 32, ReLU 64, a 1,024 + 1,024 + 64 = 4,256; head 264; plus the
    recomputed forward. Reentrant checkpointing re-runs each whole block (2,208); the
    non-reentrant one stops once the last tensor the backward needs is saved again: the second
    Linear saves its input before it runs, so only a and ReLU re-run (1,088 + 64 = 1,152).
    """
    torch.manual_seed(0)
    model = zoo.CheckpointedMLP(use_reentrant=use_reentrant).to(device)
    result = gp.count_fpo(model, torch.randn(4, 4, device=device), strict=True)
    recompute = 2 * (2_208 if use_reentrant else 1_152)
    assert result.forward_total == 288 + 2 * 2_208 + 136 == 4_840
    assert result.recompute_total == recompute
    assert result.backward_total == 288 + 2 * 4_256 + 264 + recompute
    assert result.by_module[""] == result.total
    assert result.recompute_by_module["blocks.0"] == recompute // 2
    assert result.recompute_by_module["head"] == result.recompute_by_module["stem"] == 0
    assert result.unknown_ops == {}


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_mixture_of_experts_total_by_hand(device):
    """zoo.moe_tiny on (2, 5, 16): T = 10 tokens, 4 experts, top-2, hidden 32, seeded with ones.

    Forward: router 2*10*16*4 = 1,280; softmax 5*40 - 10 rows = 190 (ATen's kernel, s35; 200
    before); top-k 40 compares; the weights' sum and division 20 + 20; histc 5*20 = 100 and
    the offsets' cumsum 4 (sorting and index math are integer: 0); the grouped products over
    the 20 (token, expert) rows: gate-up 2*20*16*64 = 40,960 and down 2*20*32*16 = 20,480;
    SiLU 4*640 (ATen's kernel ``x / (1 + exp(-x))``, s35; 2*640 before) and its product with
    up 640; the routing weights 320 and adding back per token 320. Forward 66,934 (65,664
    before s35).

    Backward: the weighting: 320 (grad y) + 320 + 320 (grad weights: product and sum), the
    weights' gather back 20; down's grouped products 20,480 (rows) + 20,480 (experts); SiLU * up
    640 + 640; SiLU's backward (autograd's decomposition: sigmoid 4, ``1 - s``, three
    multiplies, an add) 9 per element 5,760 (6 per element, 3,840, before s35); gate-up's experts
    40,960 (the gathered tokens need no gradient); the normalisation's division 140 (numerator 20;
    denominator: two divisions, a multiply, a negation 80, summed over the top-k 20; the two
    gradient paths added 20); softmax backward 4*40 - 10 = 150 (160 before s35); the router's weight
    1,280. Backward 91,510 (89,600 before s35). (Softmax and SiLU as the float32 kernels run them:
    the bfloat16 kernels start the max from ``-inf`` and merge vector lanes, a few FPO per row more,
    not counted.)
    """
    torch.manual_seed(0)
    model = zoo.moe_tiny().to(device)
    x = torch.randn(2, 5, 16, device=device, dtype=torch.bfloat16)
    result = gp.count_fpo(model, x, strict=True)
    grouped = 40_960 + 20_480
    assert result.forward_total == 1_280 + 190 + 40 + 40 + 104 + grouped + 3_200 + 640 == 66_934
    backward = 960 + 20 + 2 * 20_480 + 1_280 + 5_760 + 40_960 + 140 + 150 + 1_280
    assert result.backward_total == backward == 91_510
    assert result.calls["aten._grouped_mm"] == 5
    assert result.matmul_total == 2 * 1_280  # FlopCounterMode counts the router only
    assert result.by_module[""] == result.total
    assert result.unknown_ops == {}


def test_transformer_encoder_in_eval_runs_the_fused_layers_total_by_hand():
    """zoo.transformer_encoder_tiny in eval under no_grad on (2, 6, 16): two fused layers
    (d_model 16, 4 heads, feed-forward 32, ReLU), 12 tokens, N = 192 elements each.

    Per layer: in-projections 3 * (2*12*16*16 + 192) = 19,008; attention products
    2 * (2*2*6*6*16) = 4,608, scaling q and k 384, softmax as the slow path's CPU flash
    attention counted as the math path's ``_safe_softmax`` (ATen's softmax, 5 per score less 1
    per row, and a compare with ``-inf`` per score) over 288 scores in 48 rows = 1,680 (5 *
    288 = 1,440 before s35);
    out-projection 6,144 + 192 = 6,336; feed-forward 2*12*16*32 + 384 = 12,672, ReLU 384,
    2*12*32*16 + 192 = 12,480; residuals 384; two layer norms as ATen's CPU kernel runs them
    (s34; 2 * (7*192 + 4*12) = 2,784 before): per row of 16 float32 values 238 (Welford 96,
    the chunk's merge 65, the 8 lanes' 72, ``m2 / N``, rstd 3, ``-mean``), + 4 per element:
    2 * (12*238 + 768) = 7,248. 65,184 per layer, 130,368 in all (64,944 and 129,888 before
    s35), as the slow path counts with the fast path off.
    """
    torch.manual_seed(0)
    model = zoo.transformer_encoder_tiny().eval()
    x = torch.randn(2, 6, 16)
    with torch.no_grad():
        fused = gp.count_fpo(model, x, backward=False, strict=True)
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            slow = gp.count_fpo(model, x, backward=False, strict=True)
        finally:
            torch.backends.mha.set_fastpath_enabled(True)
    assert fused.calls == {"aten._transformer_encoder_layer_fwd": 2}
    assert fused.unknown_ops == {}
    assert fused.total == slow.total == 2 * 65_184 == 130_368
    assert fused.by_module == {
        "": 130_368,
        "layers": 130_368,
        "layers.0": 65_184,
        "layers.1": 65_184,
    }
    # FlopCounterMode does not count the fused layer; its products are outside matmul_total
    assert fused.matmul_total == 0 and slow.matmul_total == 98_304
