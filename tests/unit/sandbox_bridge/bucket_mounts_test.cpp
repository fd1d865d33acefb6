#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "sandbox_bridge/bucket_mounts.hpp"

namespace kh::sandbox_bridge {
namespace {

bucket_mount_request good() {
  bucket_mount_request r;
  r.bucket = "my-bucket.data";
  r.mount_path = "/mnt/data";
  r.endpoint = "http://127.0.0.1:9000";
  return r;
}

errc code_of(const bucket_mount_request& r) {
  auto v = bucket_mounts::validate(r);
  return v ? errc::internal_error : v.error().code;
}

TEST(bucket_mounts, accepts_a_plain_request) {
  EXPECT_TRUE(bucket_mounts::validate(good()));
  auto r = good();
  r.prefix = "/team/a";
  r.provider = "r2";
  r.s3fs_options = {"retries=1", "stat_cache_expire=60", "nonempty"};
  r.credentials = bucket_credentials{"id", "secret"};
  EXPECT_TRUE(bucket_mounts::validate(r));
}

TEST(bucket_mounts, refuses_bad_bucket_names) {
  for (const char* b : {"", "ab", "Bad_Bucket", "-start", "end-", "a..b", "UPPER", "with space"}) {
    auto r = good();
    r.bucket = b;
    EXPECT_EQ(code_of(r), errc::invalid_mount_config) << b;
  }
}

TEST(bucket_mounts, mount_paths_are_absolute_normalized_and_outside_system_folders) {
  for (const char* p : {"", "mnt/x", "/", "/mnt/x/", "/mnt//x", "/mnt/./x", "/mnt/../x", "/usr", "/usr/local/b", "/proc/b",
                        "/sys", "/dev/b", "/run/kh/b", "/etc/b"}) {
    auto r = good();
    r.mount_path = p;
    EXPECT_EQ(code_of(r), errc::invalid_mount_config) << p;
  }
  for (const char* p : {"/mnt/a", "/workspace/data", "/home/user/b", "/tmp/x", "/usrdata", "/runner"}) {
    auto r = good();
    r.mount_path = p;
    EXPECT_TRUE(bucket_mounts::validate(r)) << p;
  }
}

TEST(bucket_mounts, refuses_bad_endpoints_providers_prefixes_and_options) {
  auto r = good();
  r.endpoint = "ftp://x";
  EXPECT_EQ(code_of(r), errc::invalid_mount_config);
  r.endpoint = "http://a,b";
  EXPECT_EQ(code_of(r), errc::invalid_mount_config);
  r = good();
  r.provider = "azure";
  EXPECT_EQ(code_of(r), errc::invalid_mount_config);
  r = good();
  r.prefix = "/a/../b";
  EXPECT_EQ(code_of(r), errc::invalid_mount_config);
  for (const char* o : {"passwd_file=/etc/shadow", "url=http://x", "ro,allow_root", "-d", "use_cache=/tmp", "credlib=x.so", "a b"}) {
    r = good();
    r.s3fs_options = {o};
    EXPECT_EQ(code_of(r), errc::invalid_mount_config) << o;
  }
  r = good();
  r.credentials = bucket_credentials{"id", ""};
  EXPECT_EQ(code_of(r), errc::invalid_mount_config);
}

TEST(bucket_mounts, detects_the_provider_from_the_endpoint_host) {
  EXPECT_EQ(bucket_mounts::detect_provider("https://abc.r2.cloudflarestorage.com"), "r2");
  EXPECT_EQ(bucket_mounts::detect_provider("https://s3.us-east-1.amazonaws.com/"), "s3");
  EXPECT_EQ(bucket_mounts::detect_provider("https://storage.googleapis.com"), "gcs");
  EXPECT_EQ(bucket_mounts::detect_provider("http://127.0.0.1:9000"), "unknown");
  EXPECT_EQ(bucket_mounts::detect_provider("http://evil.amazonaws.com.example:80"), "unknown");
}

TEST(bucket_mounts, reads_mountinfo_with_escaped_paths) {
  auto file = std::filesystem::temp_directory_path() / ("kh-mountinfo-" + std::to_string(::getpid()));
  {
    std::ofstream out(file);
    out << "65 42 0:40 /newroot / rw,nosuid - tmpfs tmpfs rw\n"
        << "43 65 0:46 / /mnt/my\\040data rw,nosuid,nodev shared:1 - fuse.s3fs s3fs rw,user_id=0\n";
  }
  auto points = read_mountinfo(file);
  std::filesystem::remove(file);
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[0].first, "/");
  EXPECT_EQ(points[1].first, "/mnt/my data");
  EXPECT_EQ(points[1].second, "fuse.s3fs");
}

}  // namespace
}  // namespace kh::sandbox_bridge
