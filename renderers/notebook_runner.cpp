#include "renderers/notebook_runner.hpp"

#include <fmt/format.h>

#include <chrono>
#include <ctime>
#include <vector>

#include "renderers/output_folder.hpp"

namespace kh::renderers {
namespace {

std::string utc_now() {
  using namespace std::chrono;
  const auto now = system_clock::now();
  const auto secs = time_point_cast<seconds>(now);
  const auto micros = duration_cast<microseconds>(now - secs).count();
  const std::time_t t = system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:06d}Z", buf, micros);
}

bool valid_identifier(std::string_view name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '$')) return false;
  return true;
}

std::string header_date(const nl::json& msg) {
  if (msg.contains("header") && msg["header"].is_object()) {
    const auto& h = msg["header"];
    if (auto d = h.find("date"); d != h.end() && d->is_string()) return d->get<std::string>();
  }
  return utc_now();
}

nl::json error_output(std::string ename, std::string evalue) {
  return {{"output_type", "error"}, {"ename", ename}, {"evalue", evalue}, {"traceback", nl::json::array({ename + ": " + evalue})}};
}

}  // namespace

std::string_view run_status_name(run_status status) noexcept {
  switch (status) {
    case run_status::completed: return "completed";
    case run_status::failed: return "failed";
    case run_status::timed_out: return "timed_out";
    case run_status::interrupted: return "interrupted";
    case run_status::kernel_died: return "kernel_died";
    case run_status::error: return "error";
  }
  return "error";
}

nl::json run_report::to_json() const {
  nl::json j = {{"status", run_status_name(status)}, {"executed_cells", executed}, {"total_cells", total}};
  if (stopped_at) {
    j["stopped_at_cell"] = *stopped_at;
    j["stopped_at"] = stopped_label;
  }
  if (!message.empty()) j["message"] = message;
  return j;
}

notebook_runner::notebook_runner(cell_executor& executor, run_options options)
    : executor_(executor), options_(std::move(options)) {}

std::string notebook_runner::python_literal(const nl::json& value) {
  switch (value.type()) {
    case nl::json::value_t::null: return "None";
    case nl::json::value_t::boolean: return value.get<bool>() ? "True" : "False";
    case nl::json::value_t::array: {
      std::string out = "[";
      for (std::size_t i = 0; i < value.size(); ++i) out += (i ? ", " : "") + python_literal(value[i]);
      return out + "]";
    }
    case nl::json::value_t::object: {
      std::string out = "{";
      bool first = true;
      for (auto it = value.begin(); it != value.end(); ++it) {
        out += (first ? "" : ", ") + nl::json(it.key()).dump() + ": " + python_literal(it.value());
        first = false;
      }
      return out + "}";
    }
    default: return value.dump(-1, ' ', false, nl::json::error_handler_t::replace);
  }
}

nl::json notebook_runner::parse_parameter_value(std::string_view text) {
  auto parsed = nl::json::parse(text, nullptr, false);
  if (parsed.is_discarded()) return std::string(text);
  return parsed;
}

result<std::string> notebook_runner::parameters_source(const nl::json& parameters, std::string_view language) {
  const bool python = language == "python";
  const bool js = language == "javascript" || language == "typescript";
  if (!python && !js)
    return fail(errc::invalid_request,
                fmt::format("parameters cannot be injected into a '{}' notebook (known languages: python, javascript, typescript)", language));
  std::string src = python ? "# Parameters\n" : "// Parameters\n";
  for (auto it = parameters.begin(); it != parameters.end(); ++it) {
    if (!valid_identifier(it.key()))
      return fail(errc::invalid_request, fmt::format("parameter name '{}' is not a valid identifier", it.key()), {{"parameter", it.key()}});
    if (python) src += fmt::format("{} = {}\n", it.key(), python_literal(it.value()));
    else src += fmt::format("{} = {};\n", it.key(), it.value().dump(-1, ' ', false, nl::json::error_handler_t::replace));
  }
  return src;
}

result<void> notebook_runner::inject_parameters(notebook& nb, const nl::json& parameters, std::string_view language) {
  auto src = parameters_source(parameters, language);
  if (!src) return std::unexpected(src.error());
  auto& cells = nb.cells();
  for (std::size_t i = 0; i < cells.size();) {
    if (nb.has_tag(i, "injected-parameters")) cells.erase(cells.begin() + static_cast<std::ptrdiff_t>(i));
    else ++i;
  }
  std::size_t at = 0;
  for (std::size_t i = 0; i < cells.size(); ++i)
    if (nb.has_tag(i, "parameters")) {
      at = i + 1;
      break;
    }
  nl::json cell = nb.make_cell("code", *src);
  cell["metadata"]["tags"] = nl::json::array({"injected-parameters"});
  nb.insert_cell(at, std::move(cell));
  auto& md = nb.metadata();
  md["papermill"]["parameters"] = parameters;
  return {};
}

run_report notebook_runner::run(notebook& nb) {
  run_report report;
  auto stop = [&](run_status status, std::size_t cell, std::string message) {
    report.status = status;
    report.stopped_at = cell;
    report.stopped_label = nb.cell_label(cell);
    report.message = std::move(message);
  };
  auto finish = [&]() -> run_report {
    nb.metadata()["kernel_host"]["run"] = report.to_json();
    if (report.stopped_at) nb.cells()[*report.stopped_at]["metadata"]["kernel_host"]["stopped_run"] = run_status_name(report.status);
    return report;
  };

  const nl::json info = executor_.kernel_info();
  if (info.contains("language_info") && info["language_info"].is_object()) nb.metadata()["language_info"] = info["language_info"];
  if (!options_.parameters.empty()) {
    std::string language = nb.language();
    if (auto li = info.find("language_info"); li != info.end() && li->is_object()) language = li->value("name", language);
    if (auto r = inject_parameters(nb, options_.parameters, language); !r) {
      report.status = run_status::error;
      report.message = r.error().message;
      return finish();
    }
  }

  std::vector<std::size_t> to_run;
  for (std::size_t i = 0; i < nb.size(); ++i) {
    auto& cell = nb.cells()[i];
    if (cell.value("cell_type", "") != "code") continue;
    cell["outputs"] = nl::json::array();
    cell["execution_count"] = nullptr;
    if (cell["metadata"].is_object()) cell["metadata"].erase("execution");
    if (cell["metadata"].contains("kernel_host")) cell["metadata"].erase("kernel_host");
    const std::string src = nb.source(i);
    if (src.find_first_not_of(" \t\r\n") == std::string::npos || nb.has_tag(i, "skip-execution")) continue;
    to_run.push_back(i);
  }
  report.total = to_run.size();

  output_folder folder;
  std::vector<std::size_t> folded_cells;  // folder cell index -> notebook cell index
  auto write_back = [&] {
    for (std::size_t f : folder.take_changed()) nb.cells()[folded_cells[f]]["outputs"] = notebook::outputs_for_disk(folder.outputs(f));
  };
  auto cancelled = [&] { return options_.cancel && options_.cancel->load(); };

  for (std::size_t pos = 0; pos < to_run.size(); ++pos) {
    const std::size_t index = to_run[pos];
    if (cancelled()) {
      stop(run_status::interrupted, index, fmt::format("interrupted before {}", nb.cell_label(index)));
      break;
    }
    if (options_.on_progress) options_.on_progress({cell_progress::phase::started, index, pos + 1, to_run.size()});
    folder.begin_cell();
    folded_cells.push_back(index);
    auto& cell = nb.cells()[index];
    const auto t0 = std::chrono::steady_clock::now();
    nl::json timing = {{"iopub.status.busy", utc_now()}};
    nl::json kernel_timing = nl::json::object();
    const bool allowed_error = options_.allow_errors || nb.has_tag(index, "raises-exception");
    auto reply = executor_.execute(nb.source(index), !allowed_error, options_.timeout, [&](const nl::json& msg) {
      const std::string type = msg.contains("header") ? msg["header"].value("msg_type", "") : std::string();
      folder.add(type, msg.contains("content") ? msg["content"] : nl::json::object());
    });
    timing["iopub.execute_input"] = timing["iopub.status.busy"];
    ++report.executed;
    cell["execution_count"] = static_cast<int>(report.executed);
    std::string status = "ok";
    if (reply) {
      timing["shell.execute_reply"] = header_date(*reply);
      if (reply->contains("timing") && (*reply)["timing"].is_object())
        for (const auto& [key, date] : (*reply)["timing"].items())
          if (date.is_string() && !date.get<std::string>().empty()) kernel_timing[key] = date;
      const auto& content = reply->contains("content") ? (*reply)["content"] : nl::json::object();
      if (content.value("status", "") == "error") {
        status = "error";
        if (cancelled() || content.value("ename", "") == "KeyboardInterrupt") {
          status = "interrupted";
          stop(run_status::interrupted, index, fmt::format("interrupted in {}", nb.cell_label(index)));
        } else if (!allowed_error) {
          stop(run_status::failed, index,
               fmt::format("{} raised {}: {}", nb.cell_label(index), content.value("ename", "?"), content.value("evalue", "")));
        }
      } else if (content.value("status", "") == "aborted") {
        status = "aborted";
      }
    } else {
      const auto& err = reply.error();
      timing["shell.execute_reply"] = utc_now();
      write_back();  // what the cell printed before it stopped; the run ends with this cell
      nl::json& outs = cell["outputs"];
      if (err.code == errc::timeout) {
        status = "timeout";
        outs.push_back(error_output("CellTimeoutError", fmt::format("the cell did not finish within {} seconds ({})",
                                                                    options_.timeout.count() / 1000.0, err.details.value("recovery", "interrupted"))));
        stop(run_status::timed_out, index, fmt::format("{} timed out after {} s", nb.cell_label(index), options_.timeout.count() / 1000.0));
      } else if (err.code == errc::kernel_died) {
        status = "kernel_died";
        outs.push_back(error_output("DeadKernelError", err.message));
        stop(run_status::kernel_died, index, fmt::format("the kernel died while running {}: {}", nb.cell_label(index), err.message));
      } else if (err.code == errc::cancelled) {
        status = "interrupted";
        stop(run_status::interrupted, index, fmt::format("interrupted in {}", nb.cell_label(index)));
      } else {
        status = "error";
        outs.push_back(error_output("KernelError", err.to_string()));
        stop(run_status::error, index, fmt::format("{} could not run: {}", nb.cell_label(index), err.to_string()));
      }
    }
    if (reply) write_back();
    timing["iopub.status.idle"] = utc_now();
    for (const auto& [key, date] : kernel_timing.items()) timing[key] = date;  // the kernel's own clock wins
    cell["metadata"]["execution"] = timing;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (options_.on_progress)
      options_.on_progress({cell_progress::phase::finished, index, pos + 1, to_run.size(), status, seconds});
    if (report.stopped_at) break;
    if (cancelled() && pos + 1 < to_run.size()) {
      stop(run_status::interrupted, to_run[pos + 1], fmt::format("interrupted before {}", nb.cell_label(to_run[pos + 1])));
      break;
    }
  }
  if (report.status == run_status::completed) report.message = fmt::format("{} cells executed", report.executed);
  return finish();
}

}  // namespace kh::renderers
