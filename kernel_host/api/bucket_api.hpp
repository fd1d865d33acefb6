#pragma once
// Bucket mounts over HTTP: POST /api/mount-bucket and POST /api/unmount-bucket (also under
// /sandboxes/{id}/api/...), the sandbox's mounts in GET /api/sandboxes/{id} ("mounts"), and every
// mount of a sandbox removed when it is destroyed. Thin handlers over sandbox_bridge::bucket_mounts;
// mounting blocks (s3fs start and bucket check), so it runs on the elastic pool.

#include <memory>
#include <optional>

#include "common/error.hpp"
#include "kernel_host/api/sandbox_api.hpp"
#include "kernel_host/server/elastic_pool.hpp"
#include "kernel_host/server/router.hpp"
#include "sandbox_bridge/bucket_mounts.hpp"
#include "sandbox_bridge/sandbox_manager.hpp"

namespace kh::api {

// Registers the routes and the describe/destroy hooks. Returns the mounts (null when sandboxes
// are unavailable: the routes then answer `unavailable`); the caller keeps them alive while the
// routes run and calls unmount_everything() before stopping the sandboxes. Fallback credentials
// come from the daemon's environment.
std::unique_ptr<sandbox_bridge::bucket_mounts> register_bucket_api(server::router& routes, sandbox_bridge::sandbox_manager* sandboxes,
                                                                   std::optional<error> unavailable, server::elastic_pool& blocking,
                                                                   sandbox_api_hooks& hooks);

// The mount request in a body, parsed at the edge (types checked; the rules are bucket_mounts').
result<sandbox_bridge::bucket_mount_request> parse_mount_request(const nl::json& body);

}  // namespace kh::api
