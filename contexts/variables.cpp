#include "contexts/variables.hpp"

#include <algorithm>
#include <future>

#include <fmt/format.h>
#include <openssl/evp.h>

#include "common/ids.hpp"

namespace kh::contexts {
namespace {

constexpr std::string_view comm_target = "kernel_host.variables";

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 256) return false;
  if (!(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

result<void> check_names(const variables_request& request) {
  std::vector<std::string> names = request.get;
  if (!request.set.is_object()) return fail(errc::invalid_request, "variables: 'set' must be an object of name -> value");
  for (auto it = request.set.begin(); it != request.set.end(); ++it) names.push_back(it.key());
  for (const auto& [name, array] : request.arrays) names.push_back(name);
  for (const auto& name : names)
    if (!valid_name(name))
      return fail(errc::invalid_request, fmt::format("variables: '{}' is not a valid variable name", name), {{"name", name}});
  return {};
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string base64(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::size_t dtype_size(const std::string& dtype) {
  // numpy dtype strings: an optional byte-order mark, a kind letter or a name, and a size.
  static const std::map<std::string, std::size_t> names = {
      {"float64", 8}, {"float32", 4}, {"float16", 2}, {"int64", 8},  {"int32", 4}, {"int16", 2},
      {"int8", 1},    {"uint64", 8},  {"uint32", 4},  {"uint16", 2}, {"uint8", 1}, {"bool", 1},
      {"complex128", 16}, {"complex64", 8}};
  std::string d = dtype;
  if (!d.empty() && (d[0] == '<' || d[0] == '>' || d[0] == '=' || d[0] == '|')) d.erase(0, 1);
  if (auto it = names.find(d); it != names.end()) return it->second;
  if (d.size() >= 2 && std::string("fiucb?").find(d[0]) != std::string::npos) {
    try {
      return static_cast<std::size_t>(std::stoul(d.substr(1)));
    } catch (...) {
    }
  }
  return 0;
}

result<void> check_arrays(const variables_request& request) {
  for (const auto& [name, array] : request.arrays) {
    const std::size_t item = dtype_size(array.dtype);
    if (item == 0) return fail(errc::invalid_request, fmt::format("variables: array '{}': unknown dtype '{}'", name, array.dtype));
    std::size_t count = 1;
    for (auto dim : array.shape) count *= dim;
    if (count * item != array.data.size())
      return fail(errc::invalid_request,
                  fmt::format("variables: array '{}': shape and dtype need {} bytes, {} given", name, count * item,
                              array.data.size()));
  }
  return {};
}

result<variables_result> via_comm(kernel_manager& kernel, const variables_request& request,
                                  std::chrono::milliseconds timeout) {
  auto client = kernel.client();
  const std::string comm_id = kh::new_uuid();
  nl::json data = {{"request_id", comm_id}, {"set", request.set}, {"get", request.get},
                   {"get_format", request.get_as_json ? "json" : "buffers"}};
  message open = client->new_message("comm_open", {{"comm_id", comm_id}, {"target_name", comm_target}});
  if (!request.arrays.empty()) {
    nl::json arrays = nl::json::object();
    for (const auto& [name, array] : request.arrays) {
      arrays[name] = {{"dtype", array.dtype}, {"shape", array.shape}, {"buffer", open.buffers.size()}};
      open.buffers.push_back(array.data);
    }
    data["arrays"] = std::move(arrays);
  }
  open.content["data"] = std::move(data);

  struct state {
    std::promise<result<message>> done;
    std::optional<message> answer;  // written on the reactor thread before `done` is set
  };
  auto shared = std::make_shared<state>();
  client->request(channel::shell, std::move(open),
                  {.on_iopub =
                       [shared, comm_id](const message& msg) {
                         if (msg.msg_type() == "comm_msg" && msg.content.value("comm_id", "") == comm_id)
                           shared->answer = msg;
                       },
                   .on_done = [shared](result<message> r) { shared->done.set_value(std::move(r)); }},
                  {.wait_for_idle = true, .expect_reply = false, .timeout = timeout});
  auto done = shared->done.get_future().get();
  client->send(channel::shell, client->new_message("comm_close", {{"comm_id", comm_id}, {"data", nl::json::object()}}));
  if (!done) return std::unexpected(done.error());
  if (!shared->answer)
    return fail(errc::protocol_error, "the kernel did not answer the variables request", {{"comm_id", comm_id}});

  const message& answer = *shared->answer;
  const nl::json reply = answer.content.value("data", nl::json::object());
  if (reply.value("status", "") != "ok")
    return fail(errc::invalid_request,
                fmt::format("variables: {}: {}", reply.value("ename", "Error"), reply.value("evalue", "")),
                {{"ename", reply.value("ename", "")}, {"evalue", reply.value("evalue", "")}});
  variables_result out;
  out.values = reply.value("values", nl::json::object());
  out.errors = reply.value("errors", nl::json::object());
  const nl::json missing = reply.value("missing", nl::json::array());
  for (const auto& name : missing)
    if (name.is_string()) out.missing.push_back(name.get<std::string>());
  const nl::json arrays = reply.value("arrays", nl::json::object());
  for (const auto& [name, spec] : arrays.items()) {
    const std::size_t index = spec.value("buffer", std::size_t{0});
    if (index >= answer.buffers.size())
      return fail(errc::protocol_error, fmt::format("variables: array '{}' names a missing buffer", name));
    out.arrays[name] = {spec.value("dtype", "float64"), spec.value("shape", std::vector<std::size_t>{}),
                        answer.buffers[index]};
  }
  return out;
}

result<std::string> getter_code(const std::string& language, const std::vector<std::string>& names,
                                const std::string& marker) {
  const std::string list = nl::json(names).dump();
  if (language == "python")
    return fmt::format(
        "import json as __kh_json\n"
        "print({} + __kh_json.dumps({{'values': {{__kh_n: globals()[__kh_n] for __kh_n in {} if __kh_n in globals()}}}}, "
        "default=lambda o: o.tolist() if hasattr(o, 'tolist') else repr(o)))\n"
        "del __kh_json",
        nl::json(marker).dump(), list);
  if (language == "javascript" || language == "typescript")
    return fmt::format(
        "(() => {{ const values: Record<string, unknown> = {{}}; for (const n of {}) {{ try {{ values[n] = eval(n); }} "
        "catch (_) {{ /* not defined */ }} }} console.log({} + JSON.stringify({{ values }})); }})();",
        list, nl::json(marker).dump());
  return fail(errc::invalid_request, "variables are not supported for kernels of language '" + language + "'");
}

result<variables_result> via_code(kernel_manager& kernel, const std::string& language, const variables_request& request,
                                  std::chrono::milliseconds timeout) {
  std::string code;
  if (!request.set.empty()) {
    auto setter = variables_setter_code(language, request.set);
    if (!setter) return std::unexpected(setter.error());
    code += *setter + "\n";
  }
  if (!request.arrays.empty()) {
    if (language != "python") return fail(errc::invalid_request, "arrays can be set only in Python kernels");
    code += "import numpy as __kh_np, base64 as __kh_b64\n";
    for (const auto& [name, array] : request.arrays) {
      std::vector<std::string> dims;
      for (auto d : array.shape) dims.push_back(std::to_string(d));
      code += fmt::format("{} = __kh_np.frombuffer(__kh_b64.b64decode('{}'), dtype={}).reshape(({},))\n", name,
                          base64(array.data), nl::json(array.dtype).dump(), fmt::join(dims, ", "));
    }
    code += "del __kh_np, __kh_b64\n";
  }
  const std::string marker = "__kh_variables_" + kh::random_hex(8) + ":";
  if (!request.get.empty()) {
    auto getter = getter_code(language, request.get, marker);
    if (!getter) return std::unexpected(getter.error());
    code += *getter + "\n";
  }
  variables_result out;
  if (code.empty()) return out;
  auto run = kernel.execute_blocking({.code = code, .store_history = false}, timeout);
  if (!run) return std::unexpected(run.error());
  if (!run->ok())
    return fail(errc::invalid_request,
                fmt::format("variables: {}: {}", run->reply.content.value("ename", "Error"),
                            run->reply.content.value("evalue", "")));
  if (request.get.empty()) return out;
  std::string text;
  for (const auto& msg : run->outputs)
    if (msg.msg_type() == "stream") text += msg.content.value("text", "");
  const auto at = text.find(marker);
  if (at == std::string::npos) return fail(errc::protocol_error, "variables: the kernel printed no values");
  const auto end = text.find('\n', at);
  nl::json parsed = nl::json::parse(text.substr(at + marker.size(), end == std::string::npos ? end : end - at - marker.size()),
                                    nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) return fail(errc::protocol_error, "variables: unreadable values");
  out.values = parsed.value("values", nl::json::object());
  for (const auto& name : request.get)
    if (!out.values.contains(name)) out.missing.push_back(name);
  return out;
}

}  // namespace

result<std::string> variables_setter_code(const std::string& language, const nl::json& values) {
  if (!values.is_object()) return fail(errc::invalid_request, "variables: values must be an object");
  const std::string json = values.dump(-1, ' ', false, nl::json::error_handler_t::replace);
  if (language == "python")
    // A JSON string literal is a valid Python string literal.
    return "import json as __kh_json\nglobals().update(__kh_json.loads(" + nl::json(json).dump() + "))\ndel __kh_json";
  if (language == "javascript" || language == "typescript") return "Object.assign(globalThis, " + json + ");";
  return fail(errc::invalid_request, "variables are not supported for kernels of language '" + language + "'");
}

result<variables_result> exchange_variables(kernel_manager& kernel, const variables_request& request,
                                            std::chrono::milliseconds timeout) {
  if (auto ok = check_names(request); !ok) return std::unexpected(ok.error());
  if (auto ok = check_arrays(request); !ok) return std::unexpected(ok.error());
  const nl::json info = kernel.kernel_info();
  if (info.value("implementation", "") == "kernel-host-python") return via_comm(kernel, request, timeout);
  std::string language = lower(info.contains("language_info") ? info["language_info"].value("name", "") : "");
  if (language.empty()) language = lower(kernel.spec().language);
  return via_code(kernel, language, request, timeout);
}

}  // namespace kh::contexts
