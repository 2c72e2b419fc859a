"""Every command line runs as `python scripts/<name>.py` and as `mnist-sum-<name>`.

Their error cases run in-process through `main(argv)` in the test file of the
module they drive; here one subprocess per script checks the real entry point.
"""

import configparser
import os
import subprocess
import sys

import pytest

from conftest import ROOT

SCRIPTS = ("train", "evaluate", "predict", "export", "serve", "serving_client")


@pytest.mark.large
@pytest.mark.parametrize("name", SCRIPTS)
def test_script_answers_help_without_tensorflow(name):
    # --help before any TensorFlow import: the module list proves it.
    code = (f"import runpy, sys; sys.argv = ['{name}.py', '--help']\n"
            "try:\n"
            f"    runpy.run_path({os.path.join(ROOT, 'scripts', name + '.py')!r}, "
            "run_name='__main__')\n"
            "except SystemExit as e:\n"
            "    assert e.code in (0, None), e.code\n"
            "print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "usage:" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_every_script_is_a_console_script():
    parser = configparser.ConfigParser()
    parser.read(os.path.join(ROOT, "setup.cfg"))
    entries = dict(line.split(" = ") for line in
                   parser["options.entry_points"]["console_scripts"].strip().splitlines())
    assert entries == {f"mnist-sum-{name.replace('_', '-')}": f"mnist_sum_keras.cli.{name}:main"
                       for name in SCRIPTS}
    assert sorted(n[:-3] for n in os.listdir(os.path.join(ROOT, "scripts"))
                  if n.endswith(".py")) == sorted(SCRIPTS)
