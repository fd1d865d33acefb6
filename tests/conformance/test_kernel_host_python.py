"""jupyter_kernel_test (Debian's python3-jupyter-kernel-test 0.4.5) against kernel-host-python.

Every sample attribute that 0.4.5 supports is filled in; 0.4.5 has no stdin test (input() is
covered by test_kernel_host_python_features.py).
"""
import unittest

import jupyter_kernel_test


class KernelHostPythonTests(jupyter_kernel_test.KernelTests):
    kernel_name = "kernel-host-python"

    language_name = "python"
    file_extension = ".py"

    code_hello_world = "print('hello, world')"
    code_stderr = "import sys; print('test', file=sys.stderr)"

    completion_samples = [
        {"text": "zi", "matches": {"zip"}},
        {"text": "import sys; sys.getrecursionl", "matches": {"getrecursionlimit"}},
        {"text": "from os import getcw", "matches": {"getcwd", "getcwdb"}},
    ]

    complete_code_samples = ["1", "print('hello, world')", "def f(x):\n  return x*2\n\n\n"]
    incomplete_code_samples = ["print('''hello", "def f(x):\n  x += 1", "for i in range(3):", "x = (1,"]
    invalid_code_samples = ["import = 7q", "1 = 2", "x = )"]

    code_page_something = "print?"

    code_generate_error = "raise ValueError('boom')"

    code_execute_result = [
        {"code": "1+2+3", "result": "6"},
        {"code": "[n*n for n in range(1, 4)]", "result": "[1, 4, 9]"},
        {"code": "'hi' + ' there'", "result": "'hi there'"},
        {"code": "class H:\n    def _repr_html_(self): return '<b>h</b>'\nH()",
         "mime": "text/html", "result": "<b>h</b>"},
    ]

    code_display_data = [
        {"code": "display({'a': 1})", "mime": "text/plain"},
        {"code": "from IPython.display import HTML, display as d\nd(HTML('<b>x</b>'))",
         "mime": "text/html"},
        {"code": "from IPython.display import Markdown\ndisplay(Markdown('*x*'))",
         "mime": "text/markdown"},
        {"code": "from PIL import Image\ndisplay(Image.new('RGB', (2, 2)))", "mime": "image/png"},
    ]

    code_history_pattern = "1?2*"
    supported_history_operations = ("tail", "range", "search")

    code_inspect_sample = "zip"

    code_clear_output = "from IPython.display import clear_output; clear_output()"


if __name__ == "__main__":
    unittest.main()
