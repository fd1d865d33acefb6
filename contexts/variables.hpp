#pragma once
// Variables of a context: set from JSON (and numpy arrays from raw bytes) and read back.
//
// With kernel-host-python the `kernel_host.variables` comm carries them (arrays as binary message
// buffers, not copied on the kernel side; protocol in contexts/python_kernel/README.md). Other
// kernels get generated code: Python `globals().update(json.loads(...))`, JavaScript/TypeScript
// `Object.assign(globalThis, ...)`; values are read back as JSON printed by a silent cell.

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "contexts/kernel_manager.hpp"

namespace kh::contexts {

// A dense array: numpy dtype string ("float64", "int32", "<u2", ...), shape, raw C-order bytes.
struct array_value {
  std::string dtype = "float64";
  std::vector<std::size_t> shape;
  std::string data;
};

struct variables_request {
  nl::json set = nl::json::object();        // name -> JSON value
  std::map<std::string, array_value> arrays;  // name -> array (Python kernels only)
  std::vector<std::string> get;             // names to read back
  bool get_as_json = false;                 // arrays back as JSON lists instead of raw bytes
};

struct variables_result {
  nl::json values = nl::json::object();        // name -> JSON value
  std::map<std::string, array_value> arrays;   // name -> array (kernel-host-python only)
  std::vector<std::string> missing;            // requested names that are not defined
  nl::json errors = nl::json::object();        // name -> why it could not be sent back
};

// Applies `set` and `arrays`, then reads `get`. Names must be identifiers (errc::invalid_request
// otherwise, nothing applied). Fails with the kernel's error (errc::invalid_request) when the
// kernel rejects a value, errc::timeout past `timeout`.
result<variables_result> exchange_variables(kernel_manager& kernel, const variables_request& request,
                                            std::chrono::milliseconds timeout = std::chrono::seconds(30));

// The code that sets these JSON values as globals in a kernel of `language` ("python",
// "javascript", "typescript"), or errc::invalid_request for other languages.
result<std::string> variables_setter_code(const std::string& language, const nl::json& values);

}  // namespace kh::contexts
