#include "collectors/procfs/file_hasher.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/procfs/procfs_test_support.h"

namespace zastava {
namespace {

// A temporary directory, removed with its files on destruction.
struct TempDir {
  TempDir() {
    char pattern[] = "/tmp/pf-hash-XXXXXX";
    path = ::mkdtemp(pattern);
  }
  ~TempDir() {
    const std::string cmd = "rm -rf '" + path + "'";
    int status = 0;
    testing::runCommand(cmd, status);
  }
  std::string write(const std::string& name, const std::string& bytes) const {
    const auto file = path + "/" + name;
    std::ofstream(file, std::ios::binary) << bytes;
    return file;
  }
  std::string path;
};

TEST_CASE("hashPath equals an independent SHA-256 and the second call is a cache hit") {
  FileHashCache cache(testing::hashTimingClock());
  const auto first = cache.hashPath("/bin/busybox");
  REQUIRE(first.ok());
  CHECK(first->sha256 == testing::sha256OfFile("/bin/busybox"));
  CHECK_FALSE(first->cached);
  CHECK(first->bytesRead == first->size);
  CHECK(first->size > FileHashCache::kBufferBytes);  // more than one buffer was streamed
  const auto second = cache.hashPath("/bin/busybox");
  REQUIRE(second.ok());
  CHECK(second->cached);
  CHECK(second->bytesRead == 0);
  CHECK(second->sha256 == first->sha256);
  const auto stats = cache.stats();
  CHECK(stats.hits == 1);
  CHECK(stats.misses == 1);
  CHECK(stats.filesHashed == 1);
  CHECK(stats.bytesHashed == first->size);
  CHECK(stats.entries == 1);
}

TEST_CASE("the empty file and a known vector") {
  TempDir dir;
  FileHashCache cache(testing::hashTimingClock());
  CHECK(cache.hashPath(dir.write("empty", ""))->sha256 ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(cache.hashPath(dir.write("abc", "abc"))->sha256 ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("a rewritten file is hashed again (the key includes size and mtime)") {
  TempDir dir;
  FileHashCache cache(testing::hashTimingClock());
  const auto file = dir.write("f", "one");
  const auto a = cache.hashPath(file);
  REQUIRE(a.ok());
  dir.write("f", "three");
  const auto b = cache.hashPath(file);
  REQUIRE(b.ok());
  CHECK_FALSE(b->cached);
  CHECK(b->sha256 == testing::sha256OfFile(file));
  CHECK(b->sha256 != a->sha256);
}

// Two overlayfs mounts of one lower directory, as Docker's overlay2 mounts two containers of
// one image: each mount has its own st_dev. Needs root, as the rest of the suite.
struct TwoOverlays {
  TempDir dir;
  std::string merged[2];

  explicit TwoOverlays(const std::string& file, const std::string& bytes) {
    ::mkdir((dir.path + "/lower").c_str(), 0755);
    dir.write("lower/" + file, bytes);
    for (int i = 0; i < 2; ++i) {
      const std::string base = dir.path + "/c" + std::to_string(i);
      for (const char* sub : {"", "/upper", "/work", "/merged"}) {
        ::mkdir((base + sub).c_str(), 0755);
      }
      merged[i] = base + "/merged";
      const std::string options =
          "lowerdir=" + dir.path + "/lower,upperdir=" + base + "/upper,workdir=" + base + "/work";
      REQUIRE_MESSAGE(::mount("overlay", merged[i].c_str(), "overlay", 0, options.c_str()) == 0,
                      "mount overlay: ", std::strerror(errno));
    }
  }
  ~TwoOverlays() {
    for (const std::string& m : merged) ::umount2(m.c_str(), MNT_DETACH);
  }
};

TEST_CASE("overlayfs: the same layer file seen through two containers' mounts is hashed once") {
  TwoOverlays overlays("bin", std::string(100'000, 'x'));
  struct stat a {};
  struct stat b {};
  REQUIRE(::stat((overlays.merged[0] + "/bin").c_str(), &a) == 0);
  REQUIRE(::stat((overlays.merged[1] + "/bin").c_str(), &b) == 0);
  REQUIRE(a.st_dev != b.st_dev);  // what made every container hash it again
  FileHashCache cache(testing::hashTimingClock());
  const auto first = cache.hashPath(overlays.merged[0] + "/bin");
  const auto second = cache.hashPath(overlays.merged[1] + "/bin");
  REQUIRE(first.ok());
  REQUIRE(second.ok());
  CHECK_FALSE(first->cached);
  CHECK(second->cached);
  CHECK(second->sha256 == testing::sha256OfFile(overlays.dir.path + "/lower/bin"));

  // A container's own copy of the file (copied up to its upper layer) is another file.
  std::ofstream(overlays.merged[1] + "/bin", std::ios::binary) << std::string(100'000, 'y');
  const auto changed = cache.hashPath(overlays.merged[1] + "/bin");
  REQUIRE(changed.ok());
  CHECK_FALSE(changed->cached);
  CHECK(changed->sha256 == testing::sha256OfFile(overlays.merged[1] + "/bin"));
}

TEST_CASE("over budget: not read, not cached, said so") {
  TempDir dir;
  FileHashCache cache(testing::hashTimingClock());
  const auto file = dir.write("big", std::string(1000, 'x'));
  const auto over = cache.hashPath(file, 999);
  REQUIRE(over.ok());
  CHECK(over->overBudget);
  CHECK(over->sha256.empty());
  CHECK(cache.stats().bytesHashed == 0);
  const auto fits = cache.hashPath(file, 1000);
  REQUIRE(fits.ok());
  CHECK_FALSE(fits->overBudget);
  // Once cached it costs nothing, so a zero budget still answers.
  const auto cached = cache.hashPath(file, 0);
  REQUIRE(cached.ok());
  CHECK(cached->cached);
  CHECK(cached->sha256 == fits->sha256);
}

TEST_CASE("the least recently used entry is evicted beyond the cap") {
  TempDir dir;
  FileHashCache cache(testing::hashTimingClock(), 2);
  const auto a = dir.write("a", "a");
  const auto b = dir.write("b", "b");
  const auto c = dir.write("c", "c");
  REQUIRE(cache.hashPath(a).ok());
  REQUIRE(cache.hashPath(b).ok());
  CHECK(cache.hashPath(a)->cached);  // a is now the most recent
  REQUIRE(cache.hashPath(c).ok());   // evicts b
  CHECK(cache.stats().evictions == 1);
  CHECK(cache.stats().entries == 2);
  CHECK(cache.hashPath(a)->cached);
  CHECK_FALSE(cache.hashPath(b)->cached);
}

TEST_CASE("errors: missing file, a directory") {
  FileHashCache cache(testing::hashTimingClock());
  const auto missing = cache.hashPath("/nonexistent/pf-file");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == ErrorCode::kNotFound);
  CHECK(missing.error().message == "not found");
  const auto dir = cache.hashPath("/tmp");
  REQUIRE_FALSE(dir.ok());
  CHECK(dir.error().code == ErrorCode::kInvalidArgument);
}

TEST_CASE("threads share one cache") {
  FileHashCache cache(testing::hashTimingClock());
  const std::string expected = testing::sha256OfFile("/bin/sleep");
  std::vector<std::thread> threads;
  std::vector<std::string> got(4);
  for (std::size_t i = 0; i < got.size(); ++i) {
    threads.emplace_back([&, i] {
      for (int n = 0; n < 20; ++n) {
        const auto h = cache.hashPath("/bin/sleep");
        got[i] = h.ok() ? h->sha256 : h.error().message;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& g : got) CHECK(g == expected);
  const auto stats = cache.stats();
  CHECK(stats.hits + stats.misses == 80);
  CHECK(stats.entries == 1);
}

}  // namespace
}  // namespace zastava
