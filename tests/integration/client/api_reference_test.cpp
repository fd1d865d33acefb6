// Every snippet of shared/reference/seed-api-reference.md, translated to kh_client, against a real
// `kernel-host serve` started for this test (real sandboxes, real kernels). Plus the client's own
// contract: error codes, the 503 retry pattern and one reused keep-alive connection.

#include <atomic>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kernel_host/client/kh_client.hpp"
#include "support/daemon_process.hpp"

namespace kh::client {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

constexpr const char* kToken = "api-ref-token";

class api_reference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { daemon_ = new test::daemon_process({"--token", kToken, "--python-pool", "1"}); }
  static void TearDownTestSuite() {
    delete daemon_;
    daemon_ = nullptr;
  }
  void SetUp() override { ASSERT_FALSE(daemon_->url().empty()) << daemon_->log(); }
  static sandbox open(const std::string& id) { return connect(daemon_->url(), {.sandbox = id, .token = kToken}); }

  // Runs fn, which must throw sandbox_error; returns it.
  template <class F>
  static sandbox_error error_of(F&& fn) {
    try {
      fn();
    } catch (const sandbox_error& e) {
      return e;
    }
    ADD_FAILURE() << "no sandbox_error was thrown";
    return sandbox_error("NONE", "nothing thrown");
  }

  static test::daemon_process* daemon_;
};
test::daemon_process* api_reference::daemon_ = nullptr;

// ## Command Execution
TEST_F(api_reference, command_execution) {
  auto sb = open("ref-exec");
  sb.write_file("/workspace/script.py", "import sys\nprint('from script')\nprint('warned', file=sys.stderr)\n");
  // const result = await sandbox.exec('python3 script.py');  // { stdout, stderr, exitCode, success, duration }
  exec_result result = sb.exec("python3 script.py");
  EXPECT_EQ(result.stdout_data, "from script\n");
  EXPECT_EQ(result.stderr_data, "warned\n");
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_TRUE(result.success);
  EXPECT_GE(result.duration.count(), 0.0);

  // await sandbox.exec('python3 test.py', {cwd, env, stream: true, onOutput})
  sb.write_file("/workspace/project/test.py",
                "import os, sys\nprint(os.getcwd(), flush=True)\nprint(os.environ['API_KEY'], flush=True)\n"
                "print('to stderr', file=sys.stderr, flush=True)\n");
  std::string seen_out, seen_err;
  auto streamed = sb.exec("python3 test.py", {.cwd = "/workspace/project",
                                              .env = {{"API_KEY", "secret"}},
                                              .on_output = [&](std::string_view stream, std::string_view data) {
                                                (stream == "stdout" ? seen_out : seen_err) += data;
                                              }});
  EXPECT_EQ(seen_out, "/workspace/project\nsecret\n");
  EXPECT_EQ(seen_err, "to stderr\n");
  EXPECT_EQ(streamed.stdout_data, seen_out);
  EXPECT_TRUE(streamed.success);

  // stdin and exact bytes
  auto echoed = sb.exec("cat; printf '\\377\\000'", {.stdin_data = "typed\n"});
  EXPECT_EQ(echoed.stdout_data, std::string("typed\n\xff\0", 8));
}

// ## File Operations
TEST_F(api_reference, file_operations) {
  auto sb = open("ref-files");
  sb.write_file("/workspace/data.txt", "numbers: 1 2 3\n");
  // const { content } = await sandbox.readFile('/workspace/data.txt');
  auto data = sb.read_file("/workspace/data.txt");
  EXPECT_EQ(data.content, "numbers: 1 2 3\n");
  EXPECT_EQ(data.encoding, "utf-8");
  // await sandbox.writeFile('/workspace/file.txt', 'content'); // Auto-creates dirs
  sb.write_file("/workspace/file.txt", "content");
  sb.write_file("/workspace/new/nested/dirs/file.txt", "content");
  EXPECT_EQ(sb.read_file("/workspace/new/nested/dirs/file.txt").content, "content");
  const std::string binary("\x89PNG\r\n\x1a\n\0\xff\xfe", 11);
  sb.write_file("/workspace/blob.bin", binary);
  EXPECT_EQ(sb.read_file("/workspace/blob.bin").content, binary);

  // const files = await sandbox.listFiles('/workspace');
  sb.write_file("/workspace/temp.txt", "scratch");
  sb.write_file("/workspace/dir/inside.txt", "x");
  auto files = sb.list_files("/workspace");
  std::vector<std::string> names;
  for (const auto& f : files) names.push_back(f.name);
  EXPECT_THAT(names, ::testing::IsSupersetOf({"data.txt", "file.txt", "temp.txt", "dir", "new"}));
  for (const auto& f : files) {
    if (f.name == "dir") {
      EXPECT_EQ(f.type, "directory");
    }
    if (f.name == "file.txt") {
      EXPECT_EQ(f.size, 7u);
    }
  }

  // await sandbox.deleteFile('/workspace/temp.txt');
  sb.delete_file("/workspace/temp.txt");
  EXPECT_FALSE(sb.exists("/workspace/temp.txt"));
  // await sandbox.deleteFile('/workspace/dir', { recursive: true });
  EXPECT_EQ(error_of([&] { sb.delete_file("/workspace/dir"); }).code(), "IS_DIRECTORY");
  sb.delete_file("/workspace/dir", {.recursive = true});
  EXPECT_FALSE(sb.exists("/workspace/dir"));

  // await sandbox.mkdir('/workspace/dir', { recursive: true });
  sb.mkdir("/workspace/dir/a/b", {.recursive = true});
  // await sandbox.pathExists('/workspace/file.txt');
  EXPECT_TRUE(sb.exists("/workspace/file.txt"));
  EXPECT_TRUE(sb.exists("/workspace/dir/a/b"));
  EXPECT_FALSE(sb.exists("/workspace/nothing-here"));
}

// ## Background Processes
TEST_F(api_reference, background_processes) {
  auto sb = open("ref-procs");
  sb.mkdir("/workspace/public", {.recursive = true});
  sb.write_file("/workspace/public/index.html", "<h1>hi</h1>");
  // const process = await sandbox.startProcess('python3 -m http.server 8080', {processId, cwd, env});
  // (it also says "Server running" so that the reference's waitForLog(/Server running/) has a line to match)
  process web = sb.start_process("echo \"Server running on port $PORT\"; exec python3 -u -m http.server 8080",
                                 {.process_id = "web-server", .cwd = "/workspace/public", .env = {{"PORT", "8080"}}});
  // Returns: { id, pid, command }
  EXPECT_EQ(web.id(), "web-server");
  EXPECT_GT(web.pid(), 0);
  EXPECT_THAT(web.command(), HasSubstr("http.server 8080"));

  // await process.waitForPort(8080);
  web.wait_for_port(8080, {.timeout = 60s});
  // await process.waitForLog(/Server running/);
  auto line = web.wait_for_log(std::regex("Server running on port (\\d+)"), {.timeout = 60s});
  EXPECT_EQ(line.line, "Server running on port 8080");
  ASSERT_EQ(line.match.size(), 2u);
  EXPECT_EQ(line.match[1], "8080");
  // The live stream path: a line that appears only after the wait started.
  process late = sb.start_process("sleep 1; echo late-line-ready");
  EXPECT_EQ(late.wait_for_log("late-line-ready", {.timeout = 60s}).line, "late-line-ready");
  // The server answers through the sandbox's own network.
  EXPECT_THAT(sb.exec("python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080/').read().decode())\"")
                  .stdout_data,
              HasSubstr("<h1>hi</h1>"));

  // await process.waitForExit();
  process short_lived = sb.start_process("echo done; exit 3");
  auto exited = short_lived.wait_for_exit({.timeout = 60s});
  EXPECT_EQ(exited.exit_code, 3);
  EXPECT_EQ(short_lived.logs().stdout_data, "done\n");

  // const processes = await sandbox.listProcesses();
  auto processes = sb.list_processes();
  std::vector<std::string> ids;
  for (const auto& p : processes) ids.push_back(p.id());
  EXPECT_THAT(ids, ::testing::Contains("web-server"));
  // const info = await sandbox.getProcess('web-server');
  auto info = sb.get_process("web-server");
  EXPECT_EQ(info.info().status, "running");
  EXPECT_EQ(info.pid(), web.pid());
  // const logs = await sandbox.getProcessLogs('web-server');
  auto logs = sb.get_process_logs("web-server");
  EXPECT_THAT(logs.stdout_data, HasSubstr("Server running on port 8080"));
  // await sandbox.stopProcess('web-server');
  sb.stop_process("web-server");
  auto stopped = web.wait_for_exit({.timeout = 60s});
  EXPECT_NE(stopped.status, "running");
  EXPECT_NE(web.refresh().status, "running");

  // The waits' documented failures.
  process quitter = sb.start_process("echo bye");
  EXPECT_EQ(error_of([&] { quitter.wait_for_log("never printed", {.timeout = 60s}); }).code(), "PROCESS_EXITED_BEFORE_READY");
  process sleeper = sb.start_process("sleep 30");
  auto not_ready = error_of([&] { sleeper.wait_for_port(8099, {.timeout = 1s}); });
  EXPECT_EQ(not_ready.code(), "PROCESS_READY_TIMEOUT");
  EXPECT_EQ(not_ready.http_status(), 408);
  EXPECT_EQ(error_of([&] { sleeper.wait_for_log("nothing", {.timeout = 1s}); }).code(), "PROCESS_READY_TIMEOUT");
  sleeper.kill("SIGKILL");
  auto killed = sleeper.wait_for_exit({.timeout = 60s});
  EXPECT_NE(killed.status, "running");
  EXPECT_NE(killed.exit_code, 0);
  EXPECT_EQ(error_of([&] { sb.get_process("no-such-process"); }).code(), "PROCESS_NOT_FOUND");
}

// A GET of an absolute http:// URL (the preview URLs); the status and body.
std::pair<int, std::string> http_get(const std::string& url) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  const auto rest = url.substr(std::string("http://").size());
  const auto slash = rest.find('/');
  const auto authority = rest.substr(0, slash);
  const auto colon = authority.rfind(':');
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::resolver resolver(ioc);
  beast::tcp_stream stream(ioc);
  stream.connect(resolver.resolve(authority.substr(0, colon), authority.substr(colon + 1)));
  http::request<http::empty_body> req{http::verb::get, slash == std::string::npos ? "/" : rest.substr(slash), 11};
  req.set(http::field::host, authority);
  http::write(stream, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(stream, buf, res);
  return {static_cast<int>(res.result_int()), res.body()};
}

// ## Port Exposure
TEST_F(api_reference, port_exposure) {
  auto sb = open("ref-ports");
  sb.write_file("/workspace/site/index.html", "<p>preview</p>");
  auto web = sb.start_process("python3 -m http.server 8080", {.cwd = "/workspace/site"});
  web.wait_for_port(8080, {.timeout = 60s});
  // const { url } = await sandbox.exposePort(8080, { name: 'web-app', hostname: request.hostname });
  exposed_port exposed = sb.expose_port(8080, {.name = "web-app", .hostname = "localhost"});
  EXPECT_THAT(exposed.url, HasSubstr("8080-ref-ports-"));
  EXPECT_EQ(exposed.port, 8080);
  EXPECT_EQ(exposed.name, "web-app");
  ASSERT_FALSE(exposed.path_url.empty());
  auto [status, body] = http_get(exposed.path_url);
  EXPECT_EQ(status, 200);
  EXPECT_THAT(body, HasSubstr("<p>preview</p>"));
  // await sandbox.isPortExposed(8080);
  EXPECT_TRUE(sb.is_port_exposed(8080));
  // await sandbox.getExposedPorts(request.hostname);
  auto ports = sb.get_exposed_ports("localhost");
  ASSERT_EQ(ports.size(), 1u);
  EXPECT_EQ(ports[0].port, 8080);
  EXPECT_EQ(ports[0].url, exposed.url);
  // await sandbox.unexposePort(8080);
  sb.unexpose_port(8080);
  EXPECT_FALSE(sb.is_port_exposed(8080));
  EXPECT_NE(http_get(exposed.path_url).first, 200);
  EXPECT_EQ(error_of([&] { sb.expose_port(80); }).code(), "INVALID_PORT");
  web.kill();
}

// ## WebSocket Connections: sandbox.wsConnect(request, 8080) -> ws_connect(port)
TEST_F(api_reference, websocket_connections) {
  auto sb = open("realtime");
  // A WebSocket echo server in the sandbox (RFC 6455 by hand: the sandbox has no websockets module).
  sb.write_file("/workspace/ws_echo.py", R"PY(
import base64, hashlib, socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', 8080)); s.listen()
print('ws ready', flush=True)
while True:
    c, _ = s.accept(); buf = b''
    while b'\r\n\r\n' not in buf: buf += c.recv(4096)
    head, buf = buf.split(b'\r\n\r\n', 1)
    key = [l.split(b':', 1)[1].strip() for l in head.split(b'\r\n') if l.lower().startswith(b'sec-websocket-key')][0]
    accept = base64.b64encode(hashlib.sha1(key + b'258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest())
    c.sendall(b'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ' + accept + b'\r\n\r\n')
    def take(n):
        global buf
        while len(buf) < n:
            more = c.recv(65536)
            if not more: raise EOFError
            buf += more
        out, buf = buf[:n], buf[n:]; return out
    def send(op, payload):
        n = len(payload)
        size = bytes([n]) if n < 126 else (bytes([126]) + n.to_bytes(2, 'big') if n < 65536 else bytes([127]) + n.to_bytes(8, 'big'))
        c.sendall(bytes([0x80 | op]) + size + payload)
    try:
        while True:
            b0, b1 = take(2); n = b1 & 0x7f
            if n == 126: n = int.from_bytes(take(2), 'big')
            elif n == 127: n = int.from_bytes(take(8), 'big')
            mask = take(4) if b1 & 0x80 else b'\0\0\0\0'
            data = bytes(x ^ mask[i % 4] for i, x in enumerate(take(n)))
            op = b0 & 0x0f
            if op == 8: send(8, data); break
            send(op, (b'echo: ' + data) if op == 1 else data)
    except EOFError:
        pass
    c.close()
)PY");
  auto server = sb.start_process("python3 -u /workspace/ws_echo.py");
  server.wait_for_log("ws ready", {.timeout = 60s});
  ws_stream ws = sb.ws_connect(8080);
  ws.send_text("hello");
  auto reply = ws.receive();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->data, "echo: hello");
  EXPECT_FALSE(reply->binary);
  const std::string bytes("\x00\x01\xfe\xff", 4);
  ws.send_binary(bytes);
  reply = ws.receive();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->data, bytes);
  EXPECT_TRUE(reply->binary);
  ws.close(1000, "done");
  EXPECT_FALSE(ws.is_open());
  server.kill();
  // Nothing listening on the port: the upgrade is refused with the server's code.
  auto refused = error_of([&] { sb.ws_connect(8099); });
  EXPECT_EQ(refused.code(), "SERVICE_NOT_RESPONDING") << refused.what();
  EXPECT_EQ(refused.http_status(), 502);
}

// ## Bucket Mounting: the request reaches the route and its documented errors come back typed
// (a real S3 round trip is tests/node/bucket_mounts.test.mjs's, with s3rver).
TEST_F(api_reference, bucket_mounting_errors) {
  auto sb = open("ref-buckets");
  // await sandbox.mountBucket(env.DATA_BUCKET, '/data', { readOnly: false });
  auto no_endpoint = error_of([&] { sb.mount_bucket("data-bucket", "/data"); });
  EXPECT_EQ(no_endpoint.code(), "INVALID_MOUNT_CONFIG") << no_endpoint.what();
  auto bad_path = error_of([&] {
    sb.mount_bucket("data-bucket", "relative/path",
                    {.endpoint = "http://127.0.0.1:9", .credentials = bucket_credentials{"key", "secret"}});
  });
  EXPECT_THAT(bad_path.code(), ::testing::AnyOf("INVALID_MOUNT_CONFIG", "VALIDATION_FAILED")) << bad_path.what();
  // await sandbox.unmountBucket('/data');  (nothing mounted there)
  auto not_mounted = error_of([&] { sb.unmount_bucket("/data"); });
  EXPECT_GE(not_mounted.http_status(), 400) << not_mounted.what();
}

// ## Sessions (Isolated Contexts)
TEST_F(api_reference, sessions) {
  auto sb = open("ref-sessions");
  sb.mkdir("/workspace/user123", {.recursive = true});
  // const session = await sandbox.createSession({ id: 'user-123', cwd: '/workspace/user123', env: { USER_ID: '123' } });
  session s = sb.create_session({.id = "user-123", .cwd = "/workspace/user123", .env = {{"USER_ID", "123"}}});
  EXPECT_EQ(s.id(), "user-123");
  // await session.exec('echo $USER_ID');
  EXPECT_EQ(s.exec("echo $USER_ID").stdout_data, "123\n");
  // await session.writeFile('config.txt', 'data');  (relative to the session's cwd)
  s.write_file("config.txt", "data");
  EXPECT_EQ(sb.read_file("/workspace/user123/config.txt").content, "data");
  // Own shell state: the sandbox's default session does not see it.
  s.exec("export ONLY_HERE=1; cd /tmp");
  EXPECT_EQ(s.exec("echo $ONLY_HERE; pwd").stdout_data, "1\n/tmp\n");
  EXPECT_EQ(sb.exec("echo ${ONLY_HERE-unset}; echo ${USER_ID-unset}").stdout_data, "unset\nunset\n");
  EXPECT_EQ(error_of([&] { sb.create_session({.id = "user-123"}); }).code(), "SESSION_ALREADY_EXISTS");
  // await sandbox.getSession('user-123');
  EXPECT_EQ(sb.get_session("user-123").exec("echo $USER_ID").stdout_data, "123\n");
  // await sandbox.deleteSession('user-123');
  sb.delete_session("user-123");
  EXPECT_EQ(error_of([&] { sb.get_session("user-123"); }).code(), "SESSION_NOT_FOUND");
}

// ## Code Interpreter
TEST_F(api_reference, code_interpreter) {
  auto sb = open("ref-code");
  // const ctx = await sandbox.createCodeContext({ language: 'python', variables: { data: [1, 2, 3, 4, 5], config: { verbose: true } } });
  code_context ctx = sb.create_code_context(
      {.language = "python", .variables = {{"data", {1, 2, 3, 4, 5}}, {"config", {{"verbose", true}}}}});
  EXPECT_FALSE(ctx.id().empty());
  EXPECT_EQ(ctx.language(), "python");

  // const result = await ctx.runCode(`import matplotlib.pyplot as plt ...`);
  std::string streamed;
  int results_seen = 0;
  execution result = ctx.run_code(
      "import matplotlib.pyplot as plt\n"
      "plt.plot(data, [x**2 for x in data])\n"
      "plt.savefig('plot.png')\n"
      "print(f\"Processed {len(data)} points\")\n",
      {.on_stdout = [&](std::string_view text) { streamed += text; }, .on_result = [&](const client::result&) { ++results_seen; }});
  // Returns: { outputs: [{ type: 'text'|'image'|'html', content }], error }
  EXPECT_FALSE(result.error) << result.error->name << ": " << result.error->value;
  EXPECT_EQ(streamed, "Processed 5 points\n");
  EXPECT_EQ(result.stdout_data, "Processed 5 points\n");
  bool has_text = false, has_image = false;
  for (const auto& o : result.outputs) {
    if (o.type == output_type::text && o.content == "Processed 5 points\n") has_text = true;
    if (o.type == output_type::image) {
      has_image = true;
      EXPECT_EQ(o.mime_type, "image/png");
      EXPECT_EQ(o.content.substr(0, 8), "iVBORw0K") << "base64 of the PNG signature";
    }
  }
  EXPECT_TRUE(has_text);
  EXPECT_TRUE(has_image) << "the matplotlib figure comes back as an image output";
  EXPECT_EQ(results_seen, static_cast<int>(result.results.size()));
  EXPECT_TRUE(sb.exists(ctx.cwd().empty() ? "/workspace/plot.png" : ctx.cwd() + "/plot.png") ||
              ctx.run_code("import os; print(os.path.exists('plot.png'))").stdout_data == "True\n");

  // const result2 = await ctx.runCode('print(data[0])'); // Still has 'data'
  EXPECT_EQ(ctx.run_code("print(data[0])").stdout_data, "1\n");
  EXPECT_EQ(ctx.run_code("print(config['verbose'])").stdout_data, "True\n");

  // The other result formats.
  auto html = ctx.run_code("from IPython.display import HTML, JSON, Markdown, display\n"
                           "display(HTML('<b>bold</b>'))\ndisplay(Markdown('# title'))\nJSON({'a': 1})");
  ASSERT_FALSE(html.error) << html.error->value;
  std::vector<output_type> types;
  for (const auto& o : html.outputs) types.push_back(o.type);
  EXPECT_THAT(types, ::testing::ElementsAre(output_type::html, output_type::markdown, output_type::json));
  EXPECT_EQ(html.outputs[0].content, "<b>bold</b>");
  ASSERT_EQ(html.results.size(), 3u);
  EXPECT_EQ(html.results[2].json, (nlohmann::json{{"a", 1}}));
  EXPECT_TRUE(html.results[2].is_main_result);
  auto main_text = ctx.run_code("6 * 7");
  ASSERT_EQ(main_text.results.size(), 1u);
  EXPECT_EQ(main_text.results[0].text, "42");
  EXPECT_EQ(main_text.outputs[0].type, output_type::text);

  // An exception is a result with an error {name, value, traceback}, not a thrown error.
  std::optional<execution_error> reported;
  auto failed = ctx.run_code("1 / 0", {.on_error = [&](const execution_error& e) { reported = e; }});
  ASSERT_TRUE(failed.error);
  EXPECT_EQ(failed.error->name, "ZeroDivisionError");
  EXPECT_THAT(failed.error->value, HasSubstr("division by zero"));
  EXPECT_FALSE(failed.error->traceback.empty());
  ASSERT_TRUE(reported);
  EXPECT_EQ(reported->name, "ZeroDivisionError");

  sb.delete_code_context(ctx.id());
  EXPECT_EQ(error_of([&] { ctx.run_code("1"); }).code(), "CONTEXT_NOT_FOUND");
}

// ## Lifecycle Management
TEST_F(api_reference, lifecycle_destroy) {
  // const sandbox = getSandbox(env.Sandbox, 'temp', { keepAlive: true }); try { ... } finally { await sandbox.destroy(); }
  auto sb = open("temp");
  std::string out;
  try {
    sb.write_file("/workspace/code.py", "print(sum(range(10)))");
    auto result = sb.exec("python3 /workspace/code.py");  // the reference's `python`: Debian has python3
    out = result.stdout_data;
    sb.start_process("sleep 300", {.process_id = "lingering"});
  } catch (...) {
    sb.destroy();
    throw;
  }
  sb.destroy();  // Deletes: files, processes, sessions
  EXPECT_EQ(out, "45\n");
  // A later request makes a fresh sandbox of that id: nothing of the old one is left.
  EXPECT_FALSE(sb.exists("/workspace/code.py"));
  EXPECT_EQ(error_of([&] { sb.get_process("lingering"); }).code(), "PROCESS_NOT_FOUND");
  sb.destroy();
}

// ## Error Handling
TEST_F(api_reference, error_handling) {
  auto sb = open("ref-errors");
  // const result = await sandbox.exec('python3 invalid.py'); if (!result.success) { exitCode, stderr }
  auto result = sb.exec("python3 invalid.py");
  EXPECT_FALSE(result.success);
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.stderr_data, HasSubstr("invalid.py"));

  // try { await sandbox.readFile('/nonexistent'); } catch (error) { error.code === 'FILE_NOT_FOUND' ... }
  auto missing = error_of([&] { sb.read_file("/nonexistent"); });
  EXPECT_EQ(missing.code(), "FILE_NOT_FOUND");
  EXPECT_EQ(missing.http_status(), 404);
  EXPECT_EQ(missing.operation(), "file.read");
  // error.code === 'TIMEOUT'
  auto slow = error_of([&] { sb.exec("sleep 30", {.timeout = 500ms}); });
  EXPECT_EQ(slow.code(), "TIMEOUT");
  auto slow_streamed = error_of([&] { sb.exec("sleep 30", {.timeout = 500ms, .on_output = [](auto, auto) {}}); });
  EXPECT_EQ(slow_streamed.code(), "TIMEOUT");
  EXPECT_EQ(sb.exec("echo still usable").stdout_data, "still usable\n");
  // No token, a wrong token.
  auto anonymous = connect(daemon_->url(), {.sandbox = "ref-errors"});
  auto unauthorized = error_of([&] { anonymous.exists("/workspace"); });
  EXPECT_EQ(unauthorized.code(), "UNAUTHORIZED");
  EXPECT_EQ(unauthorized.http_status(), 401);
  auto intruder = connect(daemon_->url(), {.sandbox = "ref-errors", .token = "wrong"});
  auto denied = error_of([&] { intruder.exists("/workspace"); });
  EXPECT_EQ(denied.code(), "PERMISSION_DENIED");
  EXPECT_EQ(denied.http_status(), 403);
  // Nothing listening.
  auto nowhere = connect("http://127.0.0.1:1", {.retry_timeout = 0ms});
  EXPECT_EQ(error_of([&] { nowhere.exists("/"); }).code(), "CONNECTION_ERROR");
  EXPECT_THROW(connect("https://example.com"), std::invalid_argument);
}

// ---- the retry pattern and the keep-alive connection, against a scripted server -----------------

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

// Answers each request with the next scripted (status, body); counts connections and requests.
class scripted_server {
 public:
  explicit scripted_server(std::vector<std::pair<int, std::string>> replies) : replies_(std::move(replies)) {
    acceptor_.open(tcp::v4());
    acceptor_.bind({boost::asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    thread_ = std::thread([this] { serve(); });
  }
  ~scripted_server() {
    stop_ = true;
    boost::system::error_code ec;
    tcp::socket poke(ioc_);
    poke.connect(acceptor_.local_endpoint(), ec);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()); }
  int connections() const { return connections_; }
  int requests() const { return requests_; }

 private:
  void serve() {
    while (!stop_) {
      tcp::socket s(ioc_);
      boost::system::error_code ec;
      acceptor_.accept(s, ec);
      if (ec || stop_) return;
      ++connections_;
      beast::flat_buffer buf;
      for (;;) {
        http::request<http::string_body> req;
        http::read(s, buf, req, ec);
        if (ec) break;
        const auto [status, body] = replies_[std::min<std::size_t>(requests_++, replies_.size() - 1)];
        http::response<http::string_body> res{static_cast<http::status>(status), 11};
        res.set(http::field::content_type, "application/json");
        if (status == 503) res.set(http::field::retry_after, "0");
        res.body() = body;
        res.keep_alive(true);
        res.prepare_payload();
        http::write(s, res, ec);
        if (ec) break;
      }
    }
  }
  std::vector<std::pair<int, std::string>> replies_;
  boost::asio::io_context ioc_;
  tcp::acceptor acceptor_{ioc_};
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0}, requests_{0};
};

const std::string kNotReady =
    R"({"code":"CONTAINER_NOT_READY","message":"the sandbox is starting","context":{"reason":"container_starting"},"httpStatus":503})";

TEST(client_retry, a_503_is_retried_with_backoff_until_it_succeeds) {
  scripted_server server({{503, kNotReady}, {503, kNotReady}, {200, R"({"success":true,"exists":true})"}});
  auto sb = connect(server.url(), {.retry_timeout = 30s, .retry_delay = 10ms});
  EXPECT_TRUE(sb.exists("/workspace"));
  EXPECT_EQ(server.requests(), 3);
}

TEST(client_retry, the_last_503_is_thrown_when_the_deadline_passes) {
  scripted_server server({{503, kNotReady}});
  auto sb = connect(server.url(), {.retry_timeout = 100ms, .retry_delay = 10ms});
  try {
    sb.exists("/workspace");
    FAIL() << "no error";
  } catch (const sandbox_error& e) {
    // else if (error.code === 'CONTAINER_NOT_READY') { /* retry */ }
    EXPECT_EQ(e.code(), "CONTAINER_NOT_READY");
    EXPECT_EQ(e.http_status(), 503);
    EXPECT_EQ(e.context()["reason"], "container_starting");
  }
  EXPECT_GE(server.requests(), 2) << "retried at least once within the deadline";
}

TEST(client_retry, plain_calls_reuse_one_keep_alive_connection) {
  scripted_server server({{200, R"({"success":true,"exists":false})"}});
  auto sb = connect(server.url());
  auto copy = sb;  // copies share the client
  for (int i = 0; i < 5; ++i) EXPECT_FALSE((i % 2 ? copy : sb).exists("/x"));
  EXPECT_EQ(server.requests(), 5);
  EXPECT_EQ(server.connections(), 1);
}

TEST(client_retry, a_non_json_error_body_is_an_internal_error) {
  scripted_server server({{502, "<html>bad gateway</html>"}});
  auto sb = connect(server.url());
  try {
    sb.exists("/x");
    FAIL() << "no error";
  } catch (const sandbox_error& e) {
    EXPECT_EQ(e.code(), "INTERNAL_ERROR");
    EXPECT_EQ(e.http_status(), 502);
  }
}

}  // namespace
}  // namespace kh::client
