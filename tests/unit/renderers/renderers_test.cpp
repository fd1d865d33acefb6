// renderers: typed results, ANSI, output folding, nbformat model, parameters, runner (with a
// scripted executor: unit tests start no process), HTML and Markdown export.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "renderers/ansi.hpp"
#include "renderers/base64.hpp"
#include "renderers/code_highlighter.hpp"
#include "renderers/html_exporter.hpp"
#include "renderers/markdown_exporter.hpp"
#include "renderers/markdown_renderer.hpp"
#include "renderers/notebook.hpp"
#include "renderers/notebook_runner.hpp"
#include "renderers/output_folder.hpp"
#include "renderers/typed_result.hpp"

namespace kh::renderers {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::filesystem::path example(const std::string& name) {
  return std::filesystem::path(KH_TEST_SOURCE_DIR).parent_path() / "notebooks" / name;
}

nl::json msg(const std::string& type, nl::json content) { return {{"header", {{"msg_type", type}}}, {"content", content}}; }

TEST(ansi, strips_colour_and_keeps_text) {
  EXPECT_EQ(strip_ansi("\x1b[31mred\x1b[0m \x1b[1;32mgreen\x1b[0m\x1b]0;title\x07!"), "red green!");
  EXPECT_EQ(strip_ansi("no escapes é"), "no escapes é");
  EXPECT_FALSE(has_ansi("plain"));
}

TEST(ansi, converts_colours_to_spans_and_escapes_html) {
  const std::string html = ansi_to_html("\x1b[31m<b>\x1b[0m & \x1b[38;5;21mblue");
  EXPECT_THAT(html, HasSubstr("<span style=\"color:#cd3131;\">&lt;b&gt;</span>"));
  EXPECT_THAT(html, HasSubstr("&amp;"));
  EXPECT_THAT(html, HasSubstr("color:#0000ff"));
  EXPECT_THAT(html, Not(HasSubstr("\x1b")));
}

TEST(typed_result, maps_every_mime_type_to_a_field) {
  const nl::json data = {{"text/plain", "\x1b[32m42\x1b[0m"},
                         {"text/html", nl::json::array({"<b>", "x</b>"})},
                         {"text/markdown", "**m**"},
                         {"image/svg+xml", "<svg/>"},
                         {"image/png", "iVBOR"},
                         {"image/jpeg", "/9j/"},
                         {"application/pdf", "JVBER"},
                         {"text/latex", "$x$"},
                         {"application/json", {{"a", 1}}},
                         {"application/javascript", "alert(1)"},
                         {std::string(chart_mime), {{"type", "bar"}}},
                         {"application/vnd.plotly.v1+json", {{"data", nl::json::array()}}}};
  auto r = typed_result::from_message("execute_result", {{"data", data}, {"metadata", {{"isolated", true}}}});
  const auto j = r.to_json();
  EXPECT_EQ(j["text"], "42");
  EXPECT_EQ(j["rawText"], "\x1b[32m42\x1b[0m");
  EXPECT_EQ(j["html"], "<b>x</b>");
  EXPECT_EQ(j["markdown"], "**m**");
  EXPECT_EQ(j["svg"], "<svg/>");
  EXPECT_EQ(j["png"], "iVBOR");
  EXPECT_EQ(j["jpeg"], "/9j/");
  EXPECT_EQ(j["pdf"], "JVBER");
  EXPECT_EQ(j["latex"], "$x$");
  EXPECT_EQ(j["json"]["a"], 1);
  EXPECT_EQ(j["javascript"], "alert(1)");
  EXPECT_EQ(j["chart"]["type"], "bar");
  EXPECT_TRUE(j["extra"].contains("application/vnd.plotly.v1+json"));
  EXPECT_EQ(j["metadata"]["isolated"], true);
  EXPECT_EQ(j["isMainResult"], true);
  EXPECT_THAT(r.formats(), ::testing::Contains("application/vnd.plotly.v1+json"));
  auto d = typed_result::from_message("display_data", {{"data", {{"text/plain", "x"}}}}).to_json();
  EXPECT_EQ(d["isMainResult"], false);
  EXPECT_FALSE(d.contains("html"));
  EXPECT_FALSE(d.contains("extra"));
}

TEST(output_folder, merges_streams_and_applies_carriage_returns_and_backspaces) {
  auto outs = output_folder::fold({msg("stream", {{"name", "stdout"}, {"text", "progress 10%\r"}}),
                                   msg("stream", {{"name", "stdout"}, {"text", "progress 50%\r"}}),
                                   msg("stream", {{"name", "stdout"}, {"text", "progress 100%\n"}}),
                                   msg("stream", {{"name", "stderr"}, {"text", "warn\n"}}),
                                   msg("stream", {{"name", "stdout"}, {"text", "abc\b\bX\n"}})});
  ASSERT_EQ(outs.size(), 3u);
  EXPECT_EQ(outs[0]["text"], "progress 100%\n");
  EXPECT_EQ(outs[1]["name"], "stderr");
  EXPECT_EQ(outs[2]["text"], "aX\n");
  EXPECT_EQ(apply_control_characters("a\rb\r\nc"), "b\r\nc");
}

TEST(output_folder, clear_output_wait_clears_at_the_next_output) {
  auto outs = output_folder::fold({msg("stream", {{"name", "stdout"}, {"text", "frame 0\n"}}),
                                   msg("clear_output", {{"wait", true}}),
                                   msg("stream", {{"name", "stdout"}, {"text", "frame 1\n"}}),
                                   msg("clear_output", {{"wait", false}}),
                                   msg("display_data", {{"data", {{"text/plain", "final"}}}, {"metadata", nl::json::object()}})});
  ASSERT_EQ(outs.size(), 1u);
  EXPECT_EQ(outs[0]["output_type"], "display_data");
  auto pending = output_folder::fold({msg("stream", {{"name", "stdout"}, {"text", "kept\n"}}), msg("clear_output", {{"wait", true}})});
  ASSERT_EQ(pending.size(), 1u);  // nothing followed the deferred clear
}

TEST(output_folder, update_display_data_rewrites_earlier_cells_by_display_id) {
  output_folder folder;
  folder.begin_cell();
  folder.add("display_data", {{"data", {{"text/plain", "step 0"}}}, {"metadata", nl::json::object()}, {"transient", {{"display_id", "d1"}}}});
  folder.add("display_data", {{"data", {{"text/plain", "other"}}}, {"metadata", nl::json::object()}});
  folder.take_changed();
  folder.begin_cell();
  folder.add("update_display_data", {{"data", {{"text/plain", "step 3"}}}, {"metadata", nl::json::object()}, {"transient", {{"display_id", "d1"}}}});
  folder.add("error", {{"ename", "ValueError"}, {"evalue", "bad"}, {"traceback", {"tb"}}});
  EXPECT_EQ(folder.outputs(0)[0]["data"]["text/plain"], "step 3");
  EXPECT_EQ(folder.outputs(0)[1]["data"]["text/plain"], "other");
  ASSERT_EQ(folder.outputs(1).size(), 1u);  // the update appends nothing
  EXPECT_EQ(folder.outputs(1)[0]["output_type"], "error");
  EXPECT_EQ(folder.take_changed(), (std::set<std::size_t>{0, 1}));
}

TEST(notebook, example_notebooks_round_trip_byte_for_byte) {
  for (const char* name : {"data_analysis.ipynb", "rich_output_gallery.ipynb", "javascript_deno.ipynb"}) {
    const std::string text = read_file(example(name));
    ASSERT_FALSE(text.empty()) << name;
    auto nb = notebook::parse(text);
    ASSERT_TRUE(nb) << nb.error().to_string();
    EXPECT_EQ(nb->dump(), text) << name;
  }
}

TEST(notebook, keeps_string_or_list_shapes_non_ascii_and_unknown_fields) {
  const std::string text =
      "{\n \"cells\": [\n  {\n   \"attachments\": {\n    \"a.png\": {\n     \"image/png\": \"iVBOR\"\n    }\n   },\n"
      "   \"cell_type\": \"markdown\",\n   \"id\": \"m1\",\n   \"metadata\": {\n    \"custom\": {\n     \"x\": 1.5\n    }\n   },\n"
      "   \"source\": \"héllo \\u001b wörld\\nline 2\"\n  },\n  {\n   \"cell_type\": \"code\",\n   \"execution_count\": null,\n"
      "   \"id\": \"c1\",\n   \"metadata\": {},\n   \"outputs\": [],\n   \"source\": [\n    \"x = 1\\n\",\n    \"x\"\n   ]\n  }\n ],\n"
      " \"metadata\": {\n  \"unknown\": [\n   true,\n   null\n  ]\n },\n \"nbformat\": 4,\n \"nbformat_minor\": 5\n}\n";
  auto nb = notebook::parse(text);
  ASSERT_TRUE(nb) << nb.error().to_string();
  EXPECT_EQ(nb->dump(), text);
  EXPECT_EQ(nb->source(1), "x = 1\nx");
  EXPECT_EQ(nb->source(0), "héllo \x1b wörld\nline 2");
}

TEST(notebook, validation_errors_name_the_cell_and_field) {
  auto bad_output = notebook::parse(R"({"cells":[{"cell_type":"code","id":"abc","metadata":{},"source":"","execution_count":null,
      "outputs":[{"output_type":"bogus"}]}],"metadata":{},"nbformat":4,"nbformat_minor":5})");
  ASSERT_FALSE(bad_output);
  EXPECT_EQ(bad_output.error().code, errc::invalid_request);
  EXPECT_THAT(bad_output.error().message, HasSubstr("cells[0] (id 'abc').outputs[0].output_type"));
  auto bad_source = notebook::parse(R"({"cells":[{"cell_type":"markdown","metadata":{}},{"cell_type":"raw","metadata":{},"source":1}],
      "metadata":{},"nbformat":4,"nbformat_minor":4})");
  ASSERT_FALSE(bad_source);
  EXPECT_THAT(bad_source.error().message, HasSubstr("cells[0].source"));
  auto v3 = notebook::parse(R"({"cells":[],"metadata":{},"nbformat":3,"nbformat_minor":0})");
  ASSERT_FALSE(v3);
  EXPECT_THAT(v3.error().message, HasSubstr("nbformat"));
  EXPECT_FALSE(notebook::parse("{not json"));
}

TEST(notebook, adds_missing_cell_ids_in_4_5_only) {
  auto nb45 = notebook::parse(R"({"cells":[{"cell_type":"markdown","metadata":{},"source":"x"}],"metadata":{},"nbformat":4,"nbformat_minor":5})");
  ASSERT_TRUE(nb45);
  EXPECT_EQ(nb45->cells()[0]["id"].get<std::string>().size(), 8u);
  auto nb44 = notebook::parse(R"({"cells":[{"cell_type":"markdown","metadata":{},"source":"x"}],"metadata":{},"nbformat":4,"nbformat_minor":4})");
  ASSERT_TRUE(nb44);
  EXPECT_FALSE(nb44->cells()[0].contains("id"));
}

TEST(notebook, splits_lines_as_python_splitlines) {
  EXPECT_EQ(notebook::split_lines("a\nb\r\nc\rd"), nl::json({"a\n", "b\r\n", "c\r", "d"}));
  EXPECT_EQ(notebook::split_lines(""), nl::json::array());
  auto disk = notebook::outputs_for_disk({{{"output_type", "display_data"},
                                           {"data", {{"text/plain", "1\n2"}, {"image/png", "AA\nBB\n"}, {"application/json", {{"a", 1}}}}},
                                           {"metadata", nl::json::object()}}});
  EXPECT_EQ(disk[0]["data"]["text/plain"], nl::json({"1\n", "2"}));
  EXPECT_EQ(disk[0]["data"]["image/png"], "AA\nBB\n");
}

TEST(notebook, saves_atomically) {
  const auto dir = std::filesystem::temp_directory_path() / ("kh-nb-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto nb = notebook::make();
  nb.insert_cell(0, nb.make_cell("code", "print(1)"));
  ASSERT_TRUE(nb.save(dir / "out.ipynb"));
  auto back = notebook::load(dir / "out.ipynb");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->dump(), nb.dump());
  int files = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(dir)) ++files;
  EXPECT_EQ(files, 1);  // no temporary file left behind
  std::filesystem::remove_all(dir);
  EXPECT_EQ(notebook::load(dir / "missing.ipynb").error().code, errc::file_not_found);
}

TEST(parameters, values_become_python_and_javascript_literals) {
  EXPECT_EQ(notebook_runner::python_literal(notebook_runner::parse_parameter_value("[1, true, null, \"é\"]")),
            "[1, True, None, \"é\"]");
  EXPECT_EQ(notebook_runner::parse_parameter_value("hello world"), "hello world");
  EXPECT_EQ(notebook_runner::parse_parameter_value("2.5"), 2.5);
  auto py = notebook_runner::parameters_source({{"alpha", 0.5}, {"name", "x"}}, "python");
  ASSERT_TRUE(py);
  EXPECT_EQ(*py, "# Parameters\nalpha = 0.5\nname = \"x\"\n");
  auto ts = notebook_runner::parameters_source({{"count", 5}}, "typescript");
  ASSERT_TRUE(ts);
  EXPECT_EQ(*ts, "// Parameters\ncount = 5;\n");
  EXPECT_FALSE(notebook_runner::parameters_source({{"bad name", 1}}, "python"));
  EXPECT_FALSE(notebook_runner::parameters_source({{"x", 1}}, "cobol"));
}

TEST(parameters, injected_after_the_parameters_cell_replacing_an_earlier_one) {
  auto nb = notebook::make();
  nb.insert_cell(0, nb.make_cell("code", "a = 1"));
  auto params = nb.make_cell("code", "x = 1");
  params["metadata"]["tags"] = {"parameters"};
  nb.insert_cell(1, params);
  nb.insert_cell(2, nb.make_cell("code", "print(x)"));
  ASSERT_TRUE(notebook_runner::inject_parameters(nb, {{"x", 2}}, "python"));
  ASSERT_TRUE(notebook_runner::inject_parameters(nb, {{"x", 3}}, "python"));
  ASSERT_EQ(nb.size(), 4u);
  EXPECT_TRUE(nb.has_tag(2, "injected-parameters"));
  EXPECT_EQ(nb.source(2), "# Parameters\nx = 3\n");
  EXPECT_EQ(nb.json()["metadata"]["papermill"]["parameters"]["x"], 3);
  auto top = notebook::make();
  top.insert_cell(0, top.make_cell("code", "print(1)"));
  ASSERT_TRUE(notebook_runner::inject_parameters(top, {{"y", 1}}, "python"));
  EXPECT_TRUE(top.has_tag(0, "injected-parameters"));
}

// Plays a script: code -> outputs and a reply status, or an error code.
class scripted_executor : public cell_executor {
 public:
  struct step {
    std::vector<nl::json> outputs;
    std::string status = "ok";
    std::optional<errc> fail;
  };
  std::map<std::string, step> script;
  std::vector<std::string> ran;
  std::atomic<bool>* cancel_during = nullptr;

  result<nl::json> execute(const std::string& code, bool, std::chrono::milliseconds,
                           const std::function<void(const nl::json&)>& on_output) override {
    ran.push_back(code);
    const auto& s = script[code];
    for (const auto& o : s.outputs) on_output(o);
    if (cancel_during) cancel_during->store(true);
    if (s.fail) return kh::fail(*s.fail, "scripted failure");
    nl::json content = {{"status", s.status}};
    if (s.status == "error") content.update({{"ename", "ValueError"}, {"evalue", "boom"}});
    return nl::json{{"header", {{"msg_type", "execute_reply"}, {"date", "2024-01-01T00:00:00.000000Z"}}},
                    {"content", content},
                    {"timing", {{"iopub.status.busy", "2024-01-01T00:00:00.000001Z"},
                                {"iopub.execute_input", "2024-01-01T00:00:00.000002Z"}}}};
  }
  nl::json kernel_info() override { return {{"language_info", {{"name", "python"}, {"version", "3.11"}}}}; }
};

notebook three_cells() {
  auto nb = notebook::make();
  nb.insert_cell(0, nb.make_cell("code", "one"));
  nb.insert_cell(1, nb.make_cell("markdown", "# title"));
  nb.insert_cell(2, nb.make_cell("code", "two"));
  nb.insert_cell(3, nb.make_cell("code", "   "));
  nb.insert_cell(4, nb.make_cell("code", "three"));
  return nb;
}

TEST(notebook_runner, runs_cells_in_order_with_counts_and_execution_metadata) {
  scripted_executor ex;
  ex.script["one"].outputs = {msg("stream", {{"name", "stdout"}, {"text", "1\n"}})};
  ex.script["two"].outputs = {msg("execute_result", {{"data", {{"text/plain", "2"}}}, {"metadata", nl::json::object()}, {"execution_count", 7}})};
  auto nb = three_cells();
  std::vector<std::string> events;
  auto report = notebook_runner(ex, {.on_progress = [&](const cell_progress& p) {
                                       events.push_back(std::to_string(p.position) + "/" + std::to_string(p.total) + p.status);
                                     }}).run(nb);
  EXPECT_TRUE(report.ok()) << report.message;
  EXPECT_EQ(ex.ran, (std::vector<std::string>{"one", "two", "three"}));
  EXPECT_EQ(events, (std::vector<std::string>{"1/3", "1/3ok", "2/3", "2/3ok", "3/3", "3/3ok"}));
  EXPECT_EQ(nb.cells()[0]["execution_count"], 1);
  EXPECT_EQ(nb.cells()[2]["execution_count"], 2);
  EXPECT_EQ(nb.cells()[3]["execution_count"], nullptr);  // empty: skipped
  EXPECT_EQ(nb.cells()[4]["execution_count"], 3);
  EXPECT_EQ(nb.cells()[0]["outputs"][0]["text"], nl::json({"1\n"}));
  EXPECT_EQ(nb.cells()[2]["outputs"][0]["execution_count"], 7);
  for (const char* key : {"iopub.status.busy", "iopub.execute_input", "shell.execute_reply", "iopub.status.idle"})
    EXPECT_TRUE(nb.cells()[0]["metadata"]["execution"].contains(key)) << key;
  // The kernel's own dates, when the executor has them, replace local clock readings.
  EXPECT_EQ(nb.cells()[0]["metadata"]["execution"]["iopub.execute_input"], "2024-01-01T00:00:00.000002Z");
  EXPECT_EQ(nb.cells()[0]["metadata"]["execution"]["iopub.status.busy"], "2024-01-01T00:00:00.000001Z");
  EXPECT_EQ(nb.json()["metadata"]["language_info"]["name"], "python");
  EXPECT_EQ(nb.json()["metadata"]["kernel_host"]["run"]["status"], "completed");
}

TEST(notebook_runner, stops_at_the_first_error_unless_allowed) {
  scripted_executor ex;
  ex.script["two"].status = "error";
  ex.script["two"].outputs = {msg("error", {{"ename", "ValueError"}, {"evalue", "boom"}, {"traceback", {"tb"}}})};
  auto nb = three_cells();
  auto report = notebook_runner(ex, {}).run(nb);
  EXPECT_EQ(report.status, run_status::failed);
  ASSERT_TRUE(report.stopped_at);
  EXPECT_EQ(*report.stopped_at, 2u);
  EXPECT_THAT(report.message, HasSubstr("ValueError"));
  EXPECT_EQ(ex.ran.size(), 2u);
  EXPECT_EQ(nb.cells()[2]["outputs"][0]["ename"], "ValueError");
  EXPECT_EQ(nb.json()["metadata"]["kernel_host"]["run"]["stopped_at_cell"], 2);
  EXPECT_EQ(nb.cells()[2]["metadata"]["kernel_host"]["stopped_run"], "failed");

  scripted_executor ex2;
  ex2.script = ex.script;
  auto nb2 = three_cells();
  EXPECT_TRUE(notebook_runner(ex2, {.allow_errors = true}).run(nb2).ok());
  EXPECT_EQ(ex2.ran.size(), 3u);
}

TEST(notebook_runner, timeout_and_dead_kernel_leave_an_error_output) {
  scripted_executor ex;
  ex.script["two"].outputs = {msg("stream", {{"name", "stdout"}, {"text", "partial\n"}})};
  ex.script["two"].fail = errc::timeout;
  auto nb = three_cells();
  auto report = notebook_runner(ex, {.timeout = std::chrono::milliseconds(1500)}).run(nb);
  EXPECT_EQ(report.status, run_status::timed_out);
  const auto& outs = nb.cells()[2]["outputs"];
  ASSERT_EQ(outs.size(), 2u);
  EXPECT_EQ(outs[0]["text"], nl::json({"partial\n"}));  // what it printed is kept
  EXPECT_EQ(outs[1]["ename"], "CellTimeoutError");

  scripted_executor ex2;
  ex2.script["one"].fail = errc::kernel_died;
  auto nb2 = three_cells();
  EXPECT_EQ(notebook_runner(ex2, {}).run(nb2).status, run_status::kernel_died);
  EXPECT_EQ(nb2.cells()[0]["outputs"][0]["ename"], "DeadKernelError");
}

TEST(notebook_runner, cancel_stops_after_the_current_cell) {
  scripted_executor ex;
  std::atomic<bool> cancel{false};
  ex.cancel_during = &cancel;
  auto nb = three_cells();
  auto report = notebook_runner(ex, {.cancel = &cancel}).run(nb);
  EXPECT_EQ(report.status, run_status::interrupted);
  EXPECT_EQ(ex.ran.size(), 1u);
  EXPECT_EQ(*report.stopped_at, 2u);
}

TEST(notebook_runner, parameters_are_injected_before_running) {
  scripted_executor ex;
  auto nb = three_cells();
  auto report = notebook_runner(ex, {.parameters = {{"n", 4}}}).run(nb);
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(ex.ran.front(), "# Parameters\nn = 4\n");
}

TEST(base64, round_trips) {
  for (std::string s : std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) EXPECT_EQ(base64_decode(base64_encode(s)), s);
  EXPECT_EQ(base64_decode("YW\nJj\n"), "abc");
  EXPECT_FALSE(base64_decode("a*b"));
}

TEST(code_highlighter, marks_keywords_strings_comments_and_escapes) {
  const auto py = code_highlighter("python").to_html("def f(x):  # <c>\n    return f\"{x}\" + 1");
  EXPECT_THAT(py, HasSubstr("<span class=\"tok-keyword\">def</span>"));
  EXPECT_THAT(py, HasSubstr("<span class=\"tok-comment\"># &lt;c&gt;</span>"));
  EXPECT_THAT(py, HasSubstr("<span class=\"tok-string\">f&quot;{x}&quot;</span>"));
  EXPECT_THAT(py, HasSubstr("<span class=\"tok-number\">1</span>"));
  const auto ts = code_highlighter("typescript").to_html("const s = `a${1}`; // c");
  EXPECT_THAT(ts, HasSubstr("<span class=\"tok-keyword\">const</span>"));
  EXPECT_THAT(ts, HasSubstr("<span class=\"tok-string\">`a${1}`</span>"));
}

TEST(markdown_renderer, renders_the_common_subset_safely) {
  const auto html = markdown_renderer(nl::json{{"a.png", {{"image/png", "iVBOR"}}}})
                        .to_html("# Title\n\nSome **bold** and `code` with [link](https://x.org) "
                                 "[bad](javascript:alert(1)) <script>\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
                                 "![img](attachment:a.png)\n\n```python\nx = 1\n```\n");
  EXPECT_THAT(html, HasSubstr("<h1 id=\"title\">Title</h1>"));
  EXPECT_THAT(html, HasSubstr("<strong>bold</strong>"));
  EXPECT_THAT(html, HasSubstr("<code>code</code>"));
  EXPECT_THAT(html, HasSubstr("<a href=\"https://x.org\">link</a>"));
  EXPECT_THAT(html, Not(HasSubstr("javascript:")));
  EXPECT_THAT(html, HasSubstr("&lt;script&gt;"));
  EXPECT_THAT(html, HasSubstr("<li>two</li>"));
  EXPECT_THAT(html, HasSubstr("<td>2</td>"));
  EXPECT_THAT(html, HasSubstr("src=\"data:image/png;base64,iVBOR\""));
  EXPECT_THAT(html, HasSubstr("<span class=\"tok-number\">1</span>")) << "fenced code is not highlighted";
}

notebook executed_example() {
  auto nb = notebook::make();
  auto c = nb.make_cell("code", "show()");
  c["execution_count"] = 1;
  c["outputs"] = notebook::outputs_for_disk(
      {{{"output_type", "stream"}, {"name", "stdout"}, {"text", "\x1b[31mred\x1b[0m\n"}},
       {{"output_type", "display_data"}, {"data", {{"text/html", "<table><tr><td>1</td></tr></table><script>document.body.innerHTML=''</script>"}, {"text/plain", "t"}}}, {"metadata", nl::json::object()}},
       {{"output_type", "display_data"}, {"data", {{"image/png", base64_encode("PNGDATA") + "\n"}, {"text/plain", "fig"}}}, {"metadata", nl::json::object()}},
       {{"output_type", "display_data"}, {"data", {{"image/svg+xml", "<svg xmlns=\"http://www.w3.org/2000/svg\"/>"}}}, {"metadata", nl::json::object()}},
       {{"output_type", "error"}, {"ename", "ZeroDivisionError"}, {"evalue", "division by zero"}, {"traceback", {"\x1b[0;31mZeroDivisionError\x1b[0m: division by zero"}}}});
  nb.insert_cell(0, nb.make_cell("markdown", "# Report"));
  nb.insert_cell(1, c);
  return nb;
}

TEST(html_exporter, isolates_html_inlines_images_and_converts_ansi) {
  const std::string html = html_exporter().render(executed_example(), "demo <report>");
  EXPECT_THAT(html, HasSubstr("<title>demo &lt;report&gt;</title>"));
  EXPECT_THAT(html, HasSubstr("sandbox=\"allow-scripts\""));
  EXPECT_THAT(html, HasSubstr("srcdoc=\"&lt;!DOCTYPE html&gt;"));
  EXPECT_THAT(html, Not(HasSubstr("<script>document.body")));  // the output's script only inside srcdoc
  EXPECT_THAT(html, HasSubstr("src=\"data:image/png;base64," + base64_encode("PNGDATA") + "\""));
  EXPECT_THAT(html, HasSubstr("data:image/svg+xml;base64,"));
  EXPECT_THAT(html, HasSubstr("<span style=\"color:#cd3131;\">red</span>"));
  EXPECT_THAT(html, HasSubstr("ZeroDivisionError: division by zero"));
  EXPECT_THAT(html, Not(HasSubstr("\x1b")));
  EXPECT_THAT(html, HasSubstr("<h1 id=\"report\">Report</h1>"));
}

TEST(markdown_exporter, writes_images_beside_the_document) {
  auto r = markdown_exporter().render(executed_example(), "report_files");
  EXPECT_THAT(r.markdown, HasSubstr("```python\nshow()\n```"));
  EXPECT_THAT(r.markdown, HasSubstr("![png](report_files/output_1_2.png)"));
  EXPECT_THAT(r.markdown, HasSubstr("ZeroDivisionError: division by zero"));
  EXPECT_THAT(r.markdown, Not(HasSubstr("\x1b")));
  ASSERT_TRUE(r.files.contains("report_files/output_1_2.png"));
  EXPECT_EQ(r.files["report_files/output_1_2.png"], "PNGDATA");
  EXPECT_TRUE(r.files.contains("report_files/output_1_3.svg"));
}

}  // namespace
}  // namespace kh::renderers
