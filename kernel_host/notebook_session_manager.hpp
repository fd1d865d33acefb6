#pragma once
// notebook_session_manager: Jupyter's notebook sessions (path/name/type -> kernel id), kept in
// memory. Kernels belong to the context manager; a session whose kernel is gone disappears.

#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"

namespace kh::host {

struct notebook_session {
  std::string id;
  std::string path;
  std::string name;
  std::string type = "notebook";
  std::string kernel_id;
};

class notebook_session_manager {
 public:
  notebook_session add(notebook_session session);  // assigns the id
  result<notebook_session> get(const std::string& id) const;
  std::optional<notebook_session> find_by_path(const std::string& path) const;
  std::vector<notebook_session> list() const;
  result<notebook_session> update(const notebook_session& session);
  result<notebook_session> remove(const std::string& id);
  // Drops sessions whose kernel no longer exists.
  template <class Alive>
  void prune(Alive&& kernel_alive) {
    std::lock_guard lock(mutex_);
    std::erase_if(sessions_, [&](const notebook_session& s) { return !kernel_alive(s.kernel_id); });
  }

 private:
  mutable std::mutex mutex_;
  std::vector<notebook_session> sessions_;
};

}  // namespace kh::host
