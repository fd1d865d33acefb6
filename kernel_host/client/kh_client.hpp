#pragma once
// kh_client: the product's API (shared/reference/seed-api-reference.md) in C++, against a running
// kernel-host. The one header a program includes; link the CMake target kh_client.
//
//   auto sb = kh::client::connect("http://127.0.0.1:3000", {.sandbox = "user-123", .token = token});
//   auto r = sb.exec("python3 -c 'print(6*7)'");          // r.stdout_data == "42\n", r.success
//   sb.write_file("/workspace/data/in.txt", "hello");      // parents created
//   auto ctx = sb.create_code_context({.variables = {{"data", {1, 2, 3}}}});
//   auto run = ctx.run_code("sum(data)");                  // run.results[0].text == "6"
//
// Failures throw kh::client::sandbox_error (code(), http_status(), context()).

#include "kernel_host/client/sandbox.hpp"
#include "kernel_host/client/sandbox_error.hpp"
#include "kernel_host/client/sse_parser.hpp"
#include "kernel_host/client/types.hpp"
#include "kernel_host/client/ws_stream.hpp"
