#include "kernel_host/api/bucket_api.hpp"

#include <fmt/format.h>

#include "kernel_host/api/error_mapping.hpp"
#include "kernel_host/api/request_helpers.hpp"

namespace kh::api {

namespace sb = kh::sandbox_bridge;
using server::request_context;

namespace {

result<std::string> required_string(const nl::json& body, const char* field) {
  auto v = optional_string(body, field);
  if (!v) return std::unexpected(v.error());
  if (!*v || (*v)->empty())
    return fail(errc::invalid_mount_config, fmt::format("field '{}' is required", field), {{"field", field}});
  return **v;
}

nl::json mount_json(const sb::bucket_mount_info& m) {
  nl::json j{{"bucket", m.bucket},
             {"mountPath", m.mount_path},
             {"endpoint", m.endpoint},
             {"provider", m.provider},
             {"readOnly", m.read_only},
             {"mountedAt", iso_time(m.mounted_at)}};
  if (!m.prefix.empty()) j["prefix"] = m.prefix;
  return j;
}

nl::json ok(nl::json body) {
  body["success"] = true;
  body["timestamp"] = iso_timestamp();
  return body;
}

}  // namespace

result<sb::bucket_mount_request> parse_mount_request(const nl::json& body) {
  sb::bucket_mount_request r;
  auto bucket = required_string(body, "bucket");
  if (!bucket) return std::unexpected(bucket.error());
  auto path = required_string(body, "mountPath");
  if (!path) return std::unexpected(path.error());
  auto endpoint = required_string(body, "endpoint");
  if (!endpoint) return std::unexpected(endpoint.error());
  r.bucket = std::move(*bucket);
  r.mount_path = std::move(*path);
  r.endpoint = std::move(*endpoint);
  auto provider = optional_string(body, "provider");
  if (!provider) return std::unexpected(provider.error());
  r.provider = std::move(*provider);
  auto prefix = optional_string(body, "prefix");
  if (!prefix) return std::unexpected(prefix.error());
  r.prefix = prefix->value_or("");
  if (auto it = body.find("readOnly"); it != body.end() && !it->is_null()) {
    if (!it->is_boolean()) return fail(errc::validation_failed, "field 'readOnly' must be a boolean", {{"field", "readOnly"}});
    r.read_only = it->get<bool>();
  }
  if (auto it = body.find("credentials"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) return fail(errc::validation_failed, "field 'credentials' must be an object {accessKeyId, secretAccessKey}", {{"field", "credentials"}});
    auto id = optional_string(*it, "accessKeyId");
    if (!id) return std::unexpected(id.error());
    auto secret = optional_string(*it, "secretAccessKey");
    if (!secret) return std::unexpected(secret.error());
    r.credentials = sb::bucket_credentials{id->value_or(""), secret->value_or("")};
  }
  if (auto it = body.find("s3fsOptions"); it != body.end() && !it->is_null()) {
    if (!it->is_array()) return fail(errc::validation_failed, "field 's3fsOptions' must be an array of strings", {{"field", "s3fsOptions"}});
    for (const auto& o : *it) {
      if (!o.is_string()) return fail(errc::validation_failed, "field 's3fsOptions' must be an array of strings", {{"field", "s3fsOptions"}});
      r.s3fs_options.push_back(o.get<std::string>());
    }
  }
  return r;
}

std::unique_ptr<sb::bucket_mounts> register_bucket_api(server::router& routes, sb::sandbox_manager* sandboxes, std::optional<error> unavailable,
                                                       server::elastic_pool& blocking, sandbox_api_hooks& hooks) {
  std::unique_ptr<sb::bucket_mounts> owned;
  if (sandboxes) owned = std::make_unique<sb::bucket_mounts>(*sandboxes, sb::bucket_mounts_options::from_environment());
  else if (!unavailable) unavailable = error{errc::internal_error, "sandboxes are not available on this host"};
  sb::bucket_mounts* mounts = owned.get();
  auto& pool = blocking;

  routes.add("POST", "/api/mount-bucket", [=, &pool](request_context& rc) {
    if (!mounts) return send_error(*rc.out, *unavailable);
    auto body = json_object_body(rc.request);
    if (!body) return send_error(*rc.out, body.error());
    auto request = parse_mount_request(*body);
    if (!request) return send_error(*rc.out, request.error());
    pool.post([=, out = rc.out, id = rc.sandbox_id, request = std::move(*request)] {
      if (auto box = sandboxes->get_or_create(id); !box) return send_error(*out, box.error());
      auto m = mounts->mount(id, request);
      if (!m) return send_error(*out, m.error());
      nl::json j = mount_json(*m);
      j["sandboxId"] = id;
      j["mountMs"] = m->mount_time.count();
      send_json(*out, 200, ok(std::move(j)));
    });
  });
  routes.add("POST", "/api/unmount-bucket", [=, &pool](request_context& rc) {
    if (!mounts) return send_error(*rc.out, *unavailable);
    auto body = json_object_body(rc.request);
    if (!body) return send_error(*rc.out, body.error());
    auto path = required_string(*body, "mountPath");
    if (!path) return send_error(*rc.out, path.error());
    pool.post([=, out = rc.out, id = rc.sandbox_id, path = std::move(*path)] {
      auto r = mounts->unmount(id, path);
      if (!r) return send_error(*out, r.error());
      send_json(*out, 200, ok({{"sandboxId", id}, {"mountPath", path}}));
    });
  });
  if (mounts) {
    hooks.describe.push_back([mounts](const std::string& id, nl::json& out) {
      nl::json list = nl::json::array();
      for (const auto& m : mounts->list(id)) list.push_back(mount_json(m));
      out["mounts"] = std::move(list);
    });
    hooks.on_destroy.push_back([mounts](const std::string& id) { mounts->unmount_all(id); });
  }
  return owned;
}

}  // namespace kh::api
