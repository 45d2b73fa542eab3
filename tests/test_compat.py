import subprocess
import sys


def test_torchvision_and_timm_import_after_compat():
    code = ("from tagrank._compat import ensure_torchvision_importable as f; f(); "
            "import torchvision, timm; timm.create_model('tf_efficientnet_lite0', pretrained=False); print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_compat_is_idempotent():
    from tagrank._compat import ensure_torchvision_importable

    first = ensure_torchvision_importable()
    assert ensure_torchvision_importable() == first
