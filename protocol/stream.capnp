# The data plane: one checkpoint stream from the source agent straight to the
# target agent (never through the coordinator), with credit-based flow
# control. Version 5 (2: post-copy through the agents, page_feed.h; 3: probe;
# 4: a cold checkpoint's memory streamed from CRIU's page server, the
# bundle's "pages" stream; 5: the end's checksum is over the chunks' own).
@0xa23e8a48805b731f;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("ferry::proto");

const streamProtocolVersion :UInt16 = 5;
# Post-copy: wants the target may have unanswered (besides one urgent), and
# the pages one may ask for (a run of them fits a chunk).
const pagesWindow :UInt32 = 16;
const pagesMaxRun :UInt32 = 240;

enum ErrorKind {
  retryable @0;
  permanent @1;
  incompatible @2;
  invalidInput @3;
}

struct ErrorInfo {
  category @0 :ErrorKind;
  message @1 :Text;
  host @2 :Text;     # where it happened
}

struct StreamMessage {
  version @0 :UInt16;
  union {
    # sender -> receiver: first message; the token was issued for this stream only.
    open @1 :Open;
    # sender -> receiver: the next bytes; seq counts from 0.
    chunk @2 :Chunk;
    # sender -> receiver: no more bytes.
    end @3 :End;
    # sender -> receiver: the sender gives up; the receiver discards everything.
    abort @4 :ErrorInfo;
    # receiver -> sender: may send `chunks` more chunks.
    credit @5 :UInt32;
    # receiver -> sender: the verdict after `end` (or a refusal at any time).
    done @6 :Done;
    # Post-copy (after `end`): the target's agent answers its CRIU lazy-pages
    # daemon and asks the source for the pages it lacks; the source's agent
    # reads them from its CRIU page server (page_feed.h).
    # source -> target: the answer to one `want`, whole.
    pages @7 :PageRun;
    # target -> source: send these pages. At most `pagesWindow` wants are
    # unanswered, and one more that is urgent (the daemon waits for it).
    want @8 :PageRange;
    # Both ways, when a side has been quiet for a quarter of its timeout.
    keepalive @9 :Void;
    # receiver -> sender: the container runs on the target; its memory
    # follows, and the verdict comes once all of it arrived.
    restored @10 :Void;
    # receiver -> sender, first thing in post-copy: the receiver's silence
    # timeout; once silent that long it kills the copy that waits for pages.
    postcopyTimeoutMs @11 :UInt32;
    # receiver -> sender: the daemon has every page. Its copy runs on its
    # own only once `pagesHeld` came back: from then on the source stays
    # frozen without a verdict (the copy there may run); short of it the
    # target kills its copy when the source goes silent.
    pagesComplete @12 :Void;
    pagesHeld @13 :Void;
    # sender -> receiver, before the first chunk: bytes that only measure
    # the link (ChunkSender::probeLink). Each takes a credit like a chunk,
    # at most a chunk's size; the receiver drops it and grants the credit
    # back at once.
    probe @14 :Data;
  }

  struct PageRange {
    id @0 :UInt64;      # the process, as CRIU names it (its pid in the dump)
    vaddr @1 :UInt64;   # page-aligned
    pages @2 :UInt32;   # 1 .. pagesMaxRun
    urgent @3 :Bool;    # the daemon waits for it: before any other
  }
  struct PageRun {
    range @0 :PageRange;   # as wanted
    # Per page, in order: 0 its bytes are next in `data`; 1 the target holds
    # it from pre-copy, and its block's XXH3-128 is next in `held`.
    kinds @1 :Data;
    held @2 :Data;      # 16 bytes per held page
    data @3 :Data;      # 4096 bytes per other page
  }

  struct Open {
    token @0 :Data;
    label @1 :Text;   # what the stream carries, for logs ("checkpoint of web")
  }
  struct Chunk {
    seq @0 :UInt64;
    data @1 :Data;
    xxh3 @2 :UInt64;  # of data
  }
  struct End {
    chunks @0 :UInt64;
    bytes @1 :UInt64;
    xxh3 @2 :UInt64;  # of the chunks' xxh3, in order, each 8 bytes little-endian
  }
  struct Done {
    union {
      ok @0 :Void;
      error @1 :ErrorInfo;
    }
  }
}
