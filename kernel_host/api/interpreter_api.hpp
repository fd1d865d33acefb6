#pragma once
// The code-interpreter API of the Cloudflare Sandbox container contract, plus our additions:
// /api/contexts (create, list, delete, interrupt, restart, variables, input), /api/execute/code
// (SSE), /api/ping, /api/version, /api/interpreter/health. Thin handlers over context_manager.

#include "kernel_host/context_manager.hpp"
#include "kernel_host/server/router.hpp"
#include "kernel_host/server/work_pool.hpp"

namespace kh::api {

void register_interpreter_api(server::router& routes, host::context_manager& contexts, server::work_pool& blocking);

// One IOPub message as a code-interpreter SSE event ({type: stdout|stderr|result|error|...}),
// or null for messages the stream does not carry (status, execute_input, comms).
nl::json iopub_to_event(const contexts::message& msg);

// A mime bundle as result fields: text, html, markdown, svg, png, jpeg, pdf, latex, json,
// javascript, chart, extra (other mime types).
nl::json mime_bundle_to_fields(const nl::json& data);

}  // namespace kh::api
