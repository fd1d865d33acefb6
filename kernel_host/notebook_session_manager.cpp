#include "kernel_host/notebook_session_manager.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "common/ids.hpp"

namespace kh::host {
namespace {
error not_found(const std::string& id) {
  return error{errc::session_not_found, fmt::format("no session with id '{}'", id), {{"sessionId", id}}};
}
}  // namespace

notebook_session notebook_session_manager::add(notebook_session session) {
  session.id = kh::new_uuid();
  std::lock_guard lock(mutex_);
  sessions_.push_back(session);
  return session;
}

result<notebook_session> notebook_session_manager::get(const std::string& id) const {
  std::lock_guard lock(mutex_);
  for (const auto& s : sessions_)
    if (s.id == id) return s;
  return std::unexpected(not_found(id));
}

std::optional<notebook_session> notebook_session_manager::find_by_path(const std::string& path) const {
  std::lock_guard lock(mutex_);
  for (const auto& s : sessions_)
    if (s.path == path) return s;
  return std::nullopt;
}

std::vector<notebook_session> notebook_session_manager::list() const {
  std::lock_guard lock(mutex_);
  return sessions_;
}

result<notebook_session> notebook_session_manager::update(const notebook_session& session) {
  std::lock_guard lock(mutex_);
  for (auto& s : sessions_)
    if (s.id == session.id) return s = session;
  return std::unexpected(not_found(session.id));
}

result<notebook_session> notebook_session_manager::remove(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto it = std::find_if(sessions_.begin(), sessions_.end(), [&](const auto& s) { return s.id == id; });
  if (it == sessions_.end()) return std::unexpected(not_found(id));
  auto out = *it;
  sessions_.erase(it);
  return out;
}

}  // namespace kh::host
