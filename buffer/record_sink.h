// Where records go to be made durable. The Recorder is the one implementation; a producer that
// only writes records (backend delivery, for its agent.gap records) takes a RecordSink, so it
// can use nothing else of the Recorder.
#pragma once

#include "buffer/record.h"

namespace zastava {

class RecordSink {
 public:
  virtual ~RecordSink() = default;

  // Queues a record to be committed; false when it was dropped (see Recorder::submit). Any
  // thread.
  virtual bool submit(Record record) = 0;
};

}  // namespace zastava
