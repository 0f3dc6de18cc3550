import subprocess
import sys

from helpers import REPO


def test_the_package_never_imports_streamlit():
    code = ("import sys, mlp_demo.config, mlp_demo.data, mlp_demo.model, mlp_demo.train, "
            "mlp_demo.jobs, mlp_demo.checkpoints, mlp_demo.drawing, mlp_demo.plots, mlp_demo.limits, "
            "mlp_demo.store, "
            "mlp_demo.__main__; print('streamlit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
