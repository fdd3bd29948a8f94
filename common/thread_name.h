// Names the calling thread as `top -H`, `ps -L` and /proc/PID/task/TID/comm show it. Linux
// allows 15 characters; a longer name would be refused and the thread keep the process's name,
// so the length is checked when the caller is compiled.
#pragma once

#include <pthread.h>

#include <cstddef>

namespace zastava {

template <std::size_t N>
void nameThisThread(const char (&name)[N]) {
  static_assert(N <= 16, "Linux thread names are at most 15 characters");
  // Its one failure, ERANGE (too long), is ruled out above; a name is only for people reading
  // `top -H`, so nothing depends on it having been set.
  pthread_setname_np(pthread_self(), name);
}

}  // namespace zastava
