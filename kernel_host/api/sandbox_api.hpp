#pragma once
// The sandbox routes of the Cloudflare Sandbox container contract, served per sandbox
// (/api/... is the sandbox "default", /sandboxes/{id}/api/... any other, created on first use):
// sandboxes (/api/sandboxes), shell sessions (/api/session/*), commands (/api/execute,
// /api/execute/stream), files (/api/read ... /api/exists, /api/files/raw), background processes
// (/api/process/*) and port readiness (/api/port-watch). Thin handlers over sandbox_bridge; every
// call that may block runs on the elastic pool, never on an I/O thread.

#include <optional>

#include "common/error.hpp"
#include "kernel_host/server/elastic_pool.hpp"
#include "kernel_host/server/router.hpp"
#include "kernel_host/server/takeover.hpp"
#include "sandbox_bridge/sandbox_manager.hpp"

namespace kh::api {

// Hooks other modules run when a sandbox is destroyed (unexpose ports, unmount buckets), before
// its processes are killed and its folder removed.
using sandbox_destroy_hook = std::function<void(const std::string& sandbox_id)>;

struct sandbox_api_hooks {
  std::vector<sandbox_destroy_hook> on_destroy;
  // Run before an idle sandbox sleeps (stop its kernels, unmount its buckets).
  std::vector<sandbox_destroy_hook> on_sleep;
  // Extra fields for GET /api/sandboxes/{id} (e.g. mounts, exposed ports).
  std::vector<std::function<void(const std::string& sandbox_id, nl::json& out)>> describe;
};

// `sandboxes` may be null when sandboxes are unavailable on this host (no bubblewrap): every route
// then answers `unavailable`.
void register_sandbox_api(server::router& routes, sandbox_bridge::sandbox_manager* sandboxes,
                          std::optional<error> unavailable, server::elastic_pool& blocking,
                          const sandbox_api_hooks* hooks = nullptr);

// PUT /api/files/raw (and /sandboxes/{id}/api/files/raw) taken from the server before its body:
// the body streams into the file's temp copy as it arrives, with no body limit (uploads of GBs),
// and is renamed over the file once whole; a cut upload leaves the old file as it was.
server::takeover_selector raw_upload_selector(sandbox_bridge::sandbox_manager* sandboxes, std::optional<error> unavailable,
                                              server::elastic_pool& blocking);

// The session a request names: body `sessionId`, else the X-Session-Id header, else ?session= or
// ?sessionId=, else "default". Whitespace-only ids are refused.
result<std::string> request_session_id(const server::http_request& request, const nl::json& body);

// A string as JSON-safe text plus, when it is not valid UTF-8, its base64 (exact bytes).
void put_bytes(nl::json& out, const char* field, const std::string& bytes);

}  // namespace kh::api
