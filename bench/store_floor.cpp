// The floor under the agent's durable ingest: what the ledger's storage design costs by itself,
// with nothing of the agent around it. For N records of R bytes, in group commits of B records,
// it does what the agent's writer does per commit (docs/records.md, "Files" and "SQLite"):
// SHA-256 of each line chained to the previous one, one SQLite transaction inserting each line
// with its columns into the events table (the agent's schema and indexes, WAL,
// synchronous=FULL, 512 KiB page cache), then the lines appended to an NDJSON file and one
// fdatasync. Prints records/s, CPU µs per record and the bytes written to storage per record
// (/proc/self/io write_bytes), so bench/ can say how far the agent is from its own design's limit
// and what that limit is against the disk.
//
//   store_floor DIR [N=200000] [R=566] [B=512]
#include <fcntl.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace {

void check(int rc, sqlite3* db, const char* what) {
  if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW) return;
  std::fprintf(stderr, "store_floor: %s: %s\n", what, sqlite3_errmsg(db));
  std::exit(1);
}

std::string hex(const unsigned char* bytes, std::size_t size) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < size; ++i) {
    out.push_back(digits[bytes[i] >> 4]);
    out.push_back(digits[bytes[i] & 15]);
  }
  return out;
}

long long writeBytes() {
  std::ifstream io("/proc/self/io");
  for (std::string key; io >> key;) {
    long long value = 0;
    io >> value;
    if (key == "write_bytes:") return value;
  }
  return 0;
}

double cpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: store_floor DIR [N] [R] [B]\n");
    return 2;
  }
  const std::string dir = argv[1];
  const long n = argc > 2 ? std::atol(argv[2]) : 200000;
  const std::size_t recordBytes = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 566;
  const long batch = argc > 4 ? std::atol(argv[4]) : 512;

  sqlite3* db = nullptr;
  check(sqlite3_open((dir + "/floor.db").c_str(), &db), db, "open");
  check(sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-512;"
                     "CREATE TABLE events(event_id TEXT NOT NULL, kind TEXT NOT NULL,"
                     " container_id TEXT, time_nano INTEGER NOT NULL, source TEXT NOT NULL,"
                     " record TEXT NOT NULL);"
                     "CREATE UNIQUE INDEX events_time_id ON events(time_nano, event_id);"
                     "CREATE UNIQUE INDEX events_reconcile_id ON events(event_id)"
                     " WHERE source = 'reconcile';",
                     nullptr, nullptr, nullptr),
        db, "schema");
  sqlite3_stmt* insert = nullptr;
  check(sqlite3_prepare_v2(db,
                           "INSERT INTO events(event_id, kind, container_id, time_nano, source,"
                           " record) VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                           -1, &insert, nullptr),
        db, "prepare");
  const int ndjson = ::open((dir + "/floor.ndjson").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0640);
  if (ndjson < 0) return 1;

  const std::string containerId(64, 'c');
  std::string prevHash(64, '0');
  const long long writtenBefore = writeBytes();
  const double cpuBefore = cpuSeconds();
  const auto started = std::chrono::steady_clock::now();
  std::string lines;
  for (long done = 0; done < n;) {
    check(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), db, "begin");
    lines.clear();
    for (long i = 0; i < batch && done < n; ++i, ++done) {
      const std::string eventId = std::to_string(1'000'000'000'000 + done);
      std::string line = "{\"eventId\":\"" + eventId + "\",\"body\":\"";
      const std::size_t fixed = line.size() + 16 + prevHash.size();
      line.append(recordBytes > fixed ? recordBytes - fixed : 0, 'x');
      line += "\",\"prevHash\":\"" + prevHash + "\"}";
      unsigned char digest[EVP_MAX_MD_SIZE];
      unsigned int digestSize = 0;
      EVP_Digest(line.data(), line.size(), digest, &digestSize, EVP_sha256(), nullptr);
      prevHash = hex(digest, digestSize);
      sqlite3_reset(insert);
      sqlite3_bind_text(insert, 1, eventId.data(), static_cast<int>(eventId.size()), SQLITE_STATIC);
      sqlite3_bind_text(insert, 2, "container.start", -1, SQLITE_STATIC);
      sqlite3_bind_text(insert, 3, containerId.data(), static_cast<int>(containerId.size()),
                        SQLITE_STATIC);
      sqlite3_bind_int64(insert, 4, 1'796'000'000'000'000'000 + done);
      sqlite3_bind_text(insert, 5, "stream", -1, SQLITE_STATIC);
      sqlite3_bind_text(insert, 6, line.data(), static_cast<int>(line.size()), SQLITE_STATIC);
      check(sqlite3_step(insert), db, "insert");
      lines += line;
      lines += '\n';
    }
    check(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), db, "commit");
    if (::write(ndjson, lines.data(), lines.size()) != static_cast<ssize_t>(lines.size()) ||
        ::fdatasync(ndjson) != 0) {
      std::perror("store_floor: ndjson");
      return 1;
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const double cpu = cpuSeconds() - cpuBefore;
  const long long written = writeBytes() - writtenBefore;
  std::printf(
      "store_floor: %ld records of %zu bytes, %ld per commit: %.0f records/s, %.2f CPU us per "
      "record, %.0f bytes written per record\n",
      n, recordBytes, batch, static_cast<double>(n) / seconds, cpu * 1e6 / static_cast<double>(n),
      static_cast<double>(written) / static_cast<double>(n));
  sqlite3_finalize(insert);
  sqlite3_close(db);
  ::close(ndjson);
  return 0;
}
