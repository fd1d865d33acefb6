#pragma once
// Options and results of kh_client's calls: the API reference's TypeScript shapes with C++ names
// (camelCase -> snake_case). `stdout`/`stderr`/`stdin` are C macros, so those fields are
// `stdout_data`, `stderr_data`, `stdin_data`.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace kh::client {

using env_map = std::map<std::string, std::string>;
using milliseconds = std::chrono::milliseconds;

// ---- connection -------------------------------------------------------------------------------

struct connect_options {
  std::string sandbox = "default";        // requests go to <base>/sandboxes/<sandbox>/api/...
  std::string token;                      // sent as Authorization: Bearer <token> when not empty
  milliseconds retry_timeout{120'000};    // how long 503 answers are retried
  milliseconds retry_delay{1'000};        // the first backoff; doubled after each 503 (at most 30 s)
  milliseconds request_timeout{0};        // a deadline for each non-streaming call (0: none)
};

// ---- commands ---------------------------------------------------------------------------------

struct exec_options {
  std::optional<std::string> cwd;         // for this command only
  env_map env;                            // for this command only
  std::optional<milliseconds> timeout;    // the command is killed after it (error code TIMEOUT)
  std::optional<std::string> stdin_data;  // bytes given to the command's standard input
  // Called with "stdout" or "stderr" and the bytes as they are produced; setting it makes exec
  // use POST /api/execute/stream (the reference's `stream: true, onOutput`).
  std::function<void(std::string_view stream, std::string_view data)> on_output;
};

struct exec_result {
  std::string stdout_data;
  std::string stderr_data;
  int exit_code = -1;
  bool success = false;                            // exit_code == 0
  std::chrono::duration<double, std::milli> duration{0};
  std::string command;
};

// ---- files ------------------------------------------------------------------------------------

struct read_options {
  std::string encoding;                   // "" (auto: binary files travel as base64), "utf-8", "base64"
};

struct file_content {
  std::string path;                       // absolute, inside the sandbox
  std::string content;                    // the file's bytes (decoded when they travelled as base64)
  std::string encoding;                   // how they travelled: "utf-8" or "base64"
  bool is_binary = false;
  std::string mime_type;
  std::uint64_t size = 0;
};

struct write_options {
  std::string encoding;                   // "" (auto: base64 when content is not UTF-8), "utf-8", "base64"
};

struct write_result {
  std::string path;
  std::uint64_t bytes_written = 0;
};

struct list_options {
  bool recursive = false;
  bool include_hidden = false;
};

struct file_info {
  std::string name;
  std::string absolute_path;
  std::string relative_path;
  std::string type;                       // "file", "directory", "symlink", "other"
  std::uint64_t size = 0;
  std::string modified_at;                // ISO-8601
  std::string mode;                       // "rwxr-xr-x"
  bool readable = false, writable = false, executable = false;  // owner bits
};

struct delete_options {
  bool recursive = false;                 // needed for directories
};

struct mkdir_options {
  bool recursive = false;                 // create parents, accept an existing folder
};

// ---- processes --------------------------------------------------------------------------------

struct process_options {
  std::string process_id;                 // "" lets the server pick one
  std::optional<std::string> cwd;
  env_map env;
  std::optional<milliseconds> timeout;    // the process is killed after it
};

struct process_info {
  std::string id;
  int pid = 0;
  std::string command;
  std::string status;                     // running, completed, failed, killed, error
  std::string start_time;                 // ISO-8601
  std::string end_time;                   // "" while running
  std::optional<int> exit_code;
  std::string session_id;
};

struct process_logs {
  std::string stdout_data;
  std::string stderr_data;
};

struct status_range {
  int min = 200;
  int max = 399;
};

struct port_wait_options {
  std::string mode = "http";              // "http": a GET of `path` answers within `status`; "tcp": a connect succeeds
  std::string path = "/";
  status_range status;
  std::optional<milliseconds> timeout;    // PROCESS_READY_TIMEOUT after it
  milliseconds interval{500};             // between probes (the server clamps it to 100 ms..10 s)
};

struct log_wait_options {
  std::optional<milliseconds> timeout;    // PROCESS_READY_TIMEOUT after it
};

struct log_match {
  std::string line;                       // the whole line that matched
  std::vector<std::string> match;         // [0] the matched text, then the pattern's groups
};

struct exit_wait_options {
  std::optional<milliseconds> timeout;    // TIMEOUT after it
};

struct exit_info {
  std::optional<int> exit_code;           // none when killed by a signal
  std::string status;
};

// ---- ports ------------------------------------------------------------------------------------

struct expose_options {
  std::string name;
  std::string hostname;                   // the preview URL's host ("" = the server's preview domain)
  std::string token;                      // [a-z0-9_]{1,16}; "" lets the server make one
};

struct exposed_port {
  int port = 0;
  std::string url;
  std::string name;
  std::string status;                     // "active"
  std::string token;                      // from expose_port: the URL's token
  std::string path_url;                   // from expose_port: the path form /sandboxes/<id>/preview/<port>-<token>/
};

// ---- sessions ---------------------------------------------------------------------------------

struct session_options {
  std::string id;                         // "" lets the server pick one
  std::optional<std::string> cwd;         // default /workspace
  env_map env;
  std::optional<milliseconds> command_timeout;
};

// ---- code interpreter -------------------------------------------------------------------------

struct context_options {
  std::string language = "python";        // python, javascript, typescript (and aliases)
  nlohmann::json variables = nlohmann::json::object();  // name -> JSON value, set before any code runs
  std::optional<std::string> cwd;
  env_map env;
  std::optional<milliseconds> timeout;    // the default timeout of each run_code
};

// One display or execute result: its mime bundle as the API's fields.
struct result {
  std::optional<std::string> text, html, markdown, svg, png, jpeg, pdf, latex, javascript;  // png/jpeg/pdf: base64
  std::optional<nlohmann::json> json, chart;
  nlohmann::json extra;                   // other mime types, as sent
  bool is_main_result = false;            // the cell's last expression (execute_result)
  nlohmann::json raw;                     // the whole event

  // The formats present, e.g. {"png", "text"}.
  std::vector<std::string> formats() const;
};

enum class output_type { text, image, html, markdown, svg, latex, json, javascript, pdf };

// The reference's `{type, content}` view of an execution, in arrival order: stdout/stderr text
// (stream "stdout"/"stderr") and each result by its richest format (image > html > svg >
// markdown > latex > json > javascript > pdf > text; the others stay in `results`).
struct output {
  output_type type = output_type::text;
  std::string content;                    // images: base64, as the API sends them
  std::string mime_type;                  // "text/plain", "image/png", "image/jpeg", "text/html", ...
  std::string stream;                     // "stdout" or "stderr" for stream text, "" for results
};

struct execution_error {
  std::string name;                       // e.g. "ZeroDivisionError" (the server's code for failures of its own)
  std::string value;                      // e.g. "division by zero"
  std::vector<std::string> traceback;
};

struct run_options {
  std::function<void(std::string_view text)> on_stdout;
  std::function<void(std::string_view text)> on_stderr;
  std::function<void(const result&)> on_result;
  std::function<void(const execution_error&)> on_error;
  std::optional<milliseconds> timeout;    // the kernel is interrupted after it
};

struct execution {
  std::vector<output> outputs;
  std::vector<result> results;
  std::string stdout_data;                // every stdout chunk joined
  std::string stderr_data;
  std::optional<execution_error> error;   // set when the code raised
  std::optional<int> execution_count;
};

// ---- buckets ----------------------------------------------------------------------------------

struct bucket_credentials {
  std::string access_key_id;
  std::string secret_access_key;
};

struct mount_options {
  std::string endpoint;                   // the S3 endpoint URL
  std::string provider;                   // "r2", "s3", "gcs" or "" (from the endpoint)
  std::string prefix;                     // mount only this key prefix
  bool read_only = false;
  std::optional<bucket_credentials> credentials;  // else the daemon's AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
  std::vector<std::string> s3fs_options;  // extra s3fs -o options
};

}  // namespace kh::client
