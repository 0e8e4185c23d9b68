# The data plane: one checkpoint stream from the source agent straight to the
# target agent (never through the coordinator), with credit-based flow
# control. Version 1.
@0xa23e8a48805b731f;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("ferry::proto");

const streamProtocolVersion :UInt16 = 1;
# Post-copy tunnel messages one way at most in flight (each up to a chunk).
const tunnelWindow :UInt32 = 16;

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
    # Post-copy (after `end`), both ways: the bytes between the target's CRIU
    # lazy-pages daemon and the source's CRIU page server, which each side
    # talks to over a local TCP connection. At most `tunnelWindow` messages
    # are in flight one way; the side that took one grants one more.
    tunnel @7 :Data;
    tunnelCredit @8 :UInt32;   # 0: a keepalive (each side sends one when quiet)
    # The side's local connection ended (the daemon done, or the page server).
    tunnelEnd @9 :Void;
    # receiver -> sender: the container runs on the target; its memory
    # follows through the tunnel, and the verdict comes once all of it did.
    restored @10 :Void;
    # receiver -> sender, first thing in post-copy: the receiver's silence
    # timeout; once silent that long it kills the copy that waits for pages.
    tunnelTimeoutMs @11 :UInt32;
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
    xxh3 @2 :UInt64;  # of all bytes, in order
  }
  struct Done {
    union {
      ok @0 :Void;
      error @1 :ErrorInfo;
    }
  }
}
