#!/usr/bin/python3
"""Regenerates the example notebooks with nbformat (Debian's python3-nbformat), so they are
stored exactly as nbformat writes them. Run: /usr/bin/python3 notebooks/make_notebooks.py"""
import os
import nbformat
from nbformat.v4 import new_notebook, new_code_cell, new_markdown_cell

here = os.path.dirname(os.path.abspath(__file__))
py_meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
           "language_info": {"name": "python"}}


def code(src, tags=None, cid=None):
    c = new_code_cell(src)
    if tags:
        c.metadata["tags"] = tags
    c.id = cid
    return c


def md(src, cid):
    c = new_markdown_cell(src)
    c.id = cid
    return c


def save(nb, name):
    nbformat.validate(nb)
    nbformat.write(nb, os.path.join(here, name))


nb = new_notebook(metadata=py_meta)
nb.cells = [
    md("# Sales analysis\n\nMonthly unit sales per region and product from `data/sales.csv`.", "intro"),
    code("min_units = 0\ntitle = \"Sales 2024\"", ["parameters"], "params"),
    code("import pandas as pd\nimport matplotlib\nimport matplotlib.pyplot as plt\n"
         "df = pd.read_csv(\"data/sales.csv\", parse_dates=[\"date\"])\n"
         "df = df[df.units >= min_units]\n"
         "df[\"revenue\"] = df.units * df.unit_price\n"
         "print(f\"{len(df)} rows, {df.region.nunique()} regions, {df['product'].nunique()} products\")", None, "load"),
    md("## Revenue by region and product", "by-region-md"),
    code("table = df.pivot_table(index=\"region\", columns=\"product\", values=\"revenue\", aggfunc=\"sum\").round(2)\ntable", None, "pivot"),
    code("totals = df.groupby(\"region\").agg(units=(\"units\", \"sum\"), revenue=(\"revenue\", \"sum\"))\n"
         "totals[\"share\"] = (totals.revenue / totals.revenue.sum()).round(3)\ntotals.sort_values(\"revenue\", ascending=False)", None, "grouped"),
    code("fig, ax = plt.subplots(figsize=(6, 3.5))\n"
         "totals.revenue.sort_values().plot.barh(ax=ax, color=\"#3b8eea\")\n"
         "ax.set_title(f\"{title}: revenue by region\")\nax.set_xlabel(\"revenue (USD)\")\nplt.tight_layout()\nplt.show()", None, "bar-chart"),
    code("monthly = df.groupby([df.date.dt.month, \"product\"]).units.sum().unstack()\n"
         "fig, ax = plt.subplots(figsize=(6, 3.5))\nmonthly.plot(ax=ax, marker=\"o\")\n"
         "ax.set_title(\"Units per month\")\nax.set_xlabel(\"month\")\nax.set_ylabel(\"units\")\nplt.tight_layout()\nplt.show()", None, "line-chart"),
    code("best = totals.revenue.idxmax()\nprint(f\"Best region: {best} ({totals.revenue.max():.2f} USD)\")", None, "summary"),
]
save(nb, "data_analysis.ipynb")

nb = new_notebook(metadata=py_meta)
nb.cells = [
    md("# Rich output gallery\n\nEvery output type a report must show: text, HTML, Markdown, SVG, PNG, JPEG, PDF, "
       "LaTeX, JSON, JavaScript, a chart description, an unknown mime type, display updates, a progress bar and an error.", "intro"),
    code("from IPython.display import display, HTML, Markdown, SVG, Image, Latex, JSON, Javascript, clear_output\n"
         "import base64, io, sys, time\nprint(\"plain stdout\")\nprint(\"to stderr\", file=sys.stderr)\n"
         "print(\"\\x1b[31mred\\x1b[0m and \\x1b[1mbold\\x1b[0m\")", None, "streams"),
    code("display(HTML(\"<table id='gallery-table'><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>\"\n"
         "             \"<style>body { background: #fafafa; }</style><script>document.title = 'inside frame';</script>\"))", None, "html"),
    code("display(Markdown(\"**bold** and `code` in *Markdown*\"))", None, "markdown"),
    code("display(SVG('<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"120\" height=\"40\">"
         "<rect width=\"120\" height=\"40\" fill=\"#3b8eea\"/><text x=\"10\" y=\"25\" fill=\"white\">SVG</text></svg>'))", None, "svg"),
    code("import matplotlib\nmatplotlib.use(\"Agg\")\nimport matplotlib.pyplot as plt\n"
         "fig, ax = plt.subplots(figsize=(2, 1.5))\nax.plot([1, 2, 3], [1, 4, 9])\n"
         "png = io.BytesIO(); fig.savefig(png, format=\"png\"); plt.close(fig)\n"
         "display(Image(data=png.getvalue(), format=\"png\"))", None, "png"),
    code("from PIL import Image as PILImage\nbuf = io.BytesIO()\nPILImage.new(\"RGB\", (64, 32), (200, 80, 40)).save(buf, format=\"JPEG\")\n"
         "display(Image(data=buf.getvalue(), format=\"jpeg\"))", None, "jpeg"),
    code("class Pdf:\n    def _repr_mimebundle_(self, include=None, exclude=None):\n"
         "        pdf = b\"%PDF-1.1\\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\\ntrailer<</Root 1 0 R>>\\n%%EOF\\n\"\n"
         "        return {\"application/pdf\": base64.b64encode(pdf).decode(), \"text/plain\": \"<a PDF>\"}\ndisplay(Pdf())", None, "pdf"),
    code("display(Latex(r\"$$\\int_0^1 x^2\\,dx = \\frac{1}{3}$$\"))\ndisplay(JSON({\"name\": \"gallery\", \"values\": [1, 2, 3]}))", None, "latex-json"),
    code("display(Javascript(\"console.log('hello from a JavaScript output')\"))", None, "javascript"),
    code("class Chart:\n    def _repr_mimebundle_(self, include=None, exclude=None):\n"
         "        return {\"application/vnd.kernel-host.chart+json\": {\"type\": \"bar\", \"title\": \"demo\", \"elements\": [{\"label\": \"a\", \"value\": 1, \"group\": \"g\"}]},\n"
         "                \"application/vnd.plotly.v1+json\": {\"data\": [{\"type\": \"bar\", \"y\": [1, 2]}]},\n"
         "                \"text/plain\": \"<chart demo>\"}\nChart()", None, "chart-extra"),
    code("handle = display(Markdown(\"step 0 of 3\"), display_id=True)", None, "display-handle"),
    code("for i in range(1, 4):\n    handle.update(Markdown(f\"step {i} of 3\"))\nprint(\"updated the display in the cell above\")", None, "display-update"),
    code("for i in range(0, 101, 20):\n    print(f\"\\rprogress {i:3d}% \" + \"#\" * (i // 10), end=\"\", flush=True)\nprint()", None, "progress"),
    code("for i in range(3):\n    clear_output(wait=True)\n    print(f\"frame {i}\")", None, "clear-output"),
    code("1 / 0", ["raises-exception"], "error"),
    code("\"after the error\"", None, "after-error"),
]
save(nb, "rich_output_gallery.ipynb")

nb = new_notebook(metadata={"kernelspec": {"name": "deno", "display_name": "Deno", "language": "typescript"},
                            "language_info": {"name": "typescript"}})
nb.cells = [
    md("# JavaScript and TypeScript on Deno\n\nRun with `kernel-host run notebooks/javascript_deno.ipynb`.", "intro"),
    code("let count = 3;", ["parameters"], "params"),
    code("console.log(\"hello from Deno\");\nconst double = (x: number): number => x * 2;\ndouble(count)", None, "typescript"),
    code("interface Row { name: string; value: number }\nconst rows: Row[] = Array.from({ length: count }, (_, i) => ({ name: `item ${i}`, value: i * i }));\n"
         "rows.map((r) => r.value).reduce((a, b) => a + b, 0)", None, "interfaces"),
    code("Deno.jupyter.html`<table id=\"deno-table\"><tr><th>name</th><th>value</th></tr>${rows.map((r) => `<tr><td>${r.name}</td><td>${r.value}</td></tr>`).join(\"\")}</table>`", None, "html"),
    code("Deno.jupyter.md`**${rows.length} rows** rendered as Markdown`", None, "markdown"),
    code("const svg = `<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"80\" height=\"30\"><rect width=\"80\" height=\"30\" fill=\"#23d18b\"/></svg>`;\n"
         "await Deno.jupyter.display({ \"image/svg+xml\": svg, \"text/plain\": \"an svg\" }, { raw: true });", None, "svg"),
    code("console.error(\"a warning on stderr\");\n({ answer: 42, list: [1, 2, 3] })", None, "object"),
    code("throw new Error(\"expected failure\")", ["raises-exception"], "error"),
    code("\"still running after the error\"", None, "after-error"),
]
save(nb, "javascript_deno.ipynb")
print("ok")
