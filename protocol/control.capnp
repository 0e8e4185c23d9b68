# The control plane: agents and the CLI talk to the coordinator (ROUTER on
# the coordinator, DEALER on agents and the CLI), one Message per frame.
# A request carries a fresh id; its reply -- ok, error, a result, or interim
# progress followed by a final reply -- carries the same id. Version 2: a
# container's log is read from an offset (getLogsFrom) instead of whole.
@0x837a9081bdda1fee;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("ferry::proto");

using Stream = import "stream.capnp";
using Json = import "/capnp/compat/json.capnp";

const controlProtocolVersion :UInt16 = 2;
# In an agent's refusal of rollbackSource: the container has no frozen copy
# there to run again (none at all, or one that is neither paused nor
# running). The coordinator reads it as the copy lost.
const noFrozenCopy :Text = "no frozen copy to resume";

struct HostInfo {
  hostName @0 :Text;
  engineVersion @1 :Text;
  kernel @2 :Text;
  arch @3 :Text;
  cpuFlags @4 :List(Text);
  pageSize @5 :UInt32;
  criuVersion @6 :Text;
  runtimeName @7 :Text;
  runtimeVersion @8 :Text;
  conmonVersion @9 :Text;
  cgroupVersion @10 :UInt8;
  distribution @11 :Text;
  distributionVersion @12 :Text;
  selinuxMode @13 :Text;
  memDirtyTrack @14 :Bool;
  uffd @15 :Bool;
  memoryBytes @16 :UInt64;
  cpus @17 :UInt32;
  postcopyUnavailable @18 :Text;  # why post-copy cannot run here; empty: it can
  nftablesLock @19 :Bool;  # CRIU locks networks with nftables here, and ferry's dumps do
}

struct Load {
  cpuPercent @0 :Float32;     # of the host's capacity, 0..100
  memoryUsedBytes @1 :UInt64;
  memoryTotalBytes @2 :UInt64;
  memoryCapacityBytes @3 :UInt64;  # what the host offers containers (--memory-capacity)
}

struct Container {
  name @0 :Text;
  host @1 :Text;
  image @2 :Text;
  status @3 :Text;            # created | running | paused | exited | checkpointed
  pid @4 :UInt32;
  exitCode @5 :Int32;         # -1 when none
  memoryBytes @6 :UInt64;
  cpuUsec @7 :UInt64;
  volumes @8 :List(Text);
  secrets @9 :List(Text);     # names of the host secrets it is given
  ready @10 :Bool;            # --sdnotify=container: said READY=1; else: running
  notifyStatus @11 :Text;     # its last sd_notify STATUS=
  ip @12 :Text;               # its address on the cluster network; "" none
  mac @13 :Text;
  ports @14 :List(Text);      # published: HOSTPORT:PORT/PROTO
}

# The cluster network, as the coordinator tells each agent (a reply to its
# hello and heartbeats): the range, and where every address lives.
struct ClusterNetwork {
  cidr @0 :Text;
  placement @1 :List(Placed);
  struct Placed {
    ip @0 :Text;
    host @1 :Text;            # that host's address
  }
}

struct ImageRef {
  name @0 :Text;
  id @1 :Text;                # sha256 hex
}

struct Host {
  name @0 :Text;
  dataEndpoint @1 :Text;
  up @2 :Bool;
  cordoned @3 :Bool;
  load @4 :Load;
  containers @5 :UInt32;
  info @6 :HostInfo;
  images @7 :List(ImageRef);
  network @8 :Text;        # as its last heartbeat said (Heartbeat.network)
  networkError @9 :Text;
}

struct RunSpec {
  name @0 :Text;
  image @1 :Text;
  args @2 :List(Text);
  env @3 :List(Text);
  volumes @4 :List(Text);     # NAME:/path[:OPTIONS]
  cwd @5 :Text;
  user @6 :Text;              # name|uid[:group|gid]
  groupAdd @7 :List(Text);    # supplementary groups: names or gids
  hostUsers @8 :List(Text);   # user names resolved in the host's files
  umask @9 :Text;             # octal
  noCreateWorkdir @10 :Bool;  # a missing working directory is an error
  tmpfs @11 :List(Text);      # DEST[:OPTIONS]
  annotations @12 :List(Text);  # KEY=VALUE
  stopSignal @13 :Text;       # e.g. SIGINT; "": SIGTERM
  labelOpts @14 :List(Text);  # --security-opt label=X: the X
  secrets @15 :List(Text);    # NAME,type=env[,target=VAR]
  sdnotify @16 :Text;         # container | conmon | ignore | ""
  hostname @17 :Text;         # "": the container's name
  userns @18 :Text;           # auto | host | "" (auto)
  network @19 :Text;          # ferry | none | "" (ferry where the coordinator has a network)
  ip @20 :Text;               # asked for (CLI), then given (coordinator -> agent)
  publish @21 :List(Text);    # HOSTPORT:PORT[/tcp|udp]
  mac @22 :Text;              # given by the coordinator, with the address
  cidr @23 :Text;             # the cluster network the address is on
}

struct Progress {
  phase @0 :Text;             # plan | image | prepare | precopy | transfer | restore | commit | rollback
  bytesDone @1 :UInt64;
  bytesTotal @2 :UInt64;      # 0 when unknown
  message @3 :Text;
  plan @4 :Placement;         # a drain's or rebalance's plan, before its first move
}

# A drain's or a rebalance's plan, and (in the final reply) what became of it.
struct Placement {
  kind @0 :Text;              # drain | rebalance
  host @1 :Text;              # the drained host
  dryRun @2 :Bool;
  moves @3 :List(PlannedMove);
  unplaced @4 :List(Unplaced);
  notes @5 :List(Text);
  struct PlannedMove {
    container @0 :Text;
    source @1 :Text;
    target @2 :Text;
    memoryBytes @3 :UInt64;
    sendsImage @4 :Bool;
    outcome @5 :Text;         # planned | moved | failed | not started
    error @6 :Text;
    migration @7 :UInt64;     # 0 when none was started
    downtimeMs @8 :UInt64;
  }
  struct Unplaced {
    container @0 :Text;
    reason @1 :Text;
  }
}

# A migration's figures: filled by the source agent, completed and kept by
# the coordinator, shown by the CLI. Their one JSON form (SQLite, --json) is
# Cap'n Proto's JsonCodec with the $Json.name keys (protocol/figures_json.h).
struct MigrationFigures {
  id @0 :UInt64;
  container @1 :Text;
  source @2 :Text;
  target @3 :Text;
  outcome @4 :Text;           # committed | rolled-back | in progress
  # frozen on the source -> running on the target
  downtimeMs @5 :UInt64 $Json.name("downtime_ms");
  totalMs @6 :UInt64 $Json.name("total_ms");
  bytesRaw @7 :UInt64 $Json.name("bytes_raw");
  bytesWire @8 :UInt64 $Json.name("bytes_wire");
  phaseMs @9 :List(PhaseTime) $Json.name("phase_ms");
  error @10 :Text;
  compression @11 :Text;      # what the stream used, and why
  startedMs @12 :Int64 $Json.name("started_ms");  # unix ms
  warnings @13 :List(Text);   # compatibility warnings, cleanup still pending
  precopy @14 :Text;          # what pre-copy did and why it stopped
  rounds @15 :List(PrecopyRound) $Json.name("precopy_rounds");
  finalBytesWire @16 :UInt64 $Json.name("final_bytes_wire");  # sent while frozen
  # checkpoint bytes rebuilt from pre-copied blocks
  bytesReferenced @17 :UInt64 $Json.name("bytes_referenced");
  postcopy @18 :Text;         # whether post-copy ran, and why
  # post-copy: from the restore on the target to its last page
  postcopyMs @19 :UInt64 $Json.name("postcopy_ms");
  bytesOnDemand @20 :UInt64 $Json.name("bytes_on_demand");  # pages the restored process waited for
  bytesPushed @21 :UInt64 $Json.name("bytes_pushed");       # pages sent ahead of it
  # hybrid: pages the target held from pre-copy (only their names crossed)
  bytesHeld @22 :UInt64 $Json.name("bytes_held");
  # what the link to the target carried raw, measured before the stream (0:
  # not measured -- a target on the source's machine, or a level asked for)
  linkBytesPerS @23 :UInt64 $Json.name("link_bytes_per_s");
  struct PhaseTime {
    phase @0 :Text;
    ms @1 :UInt64;
  }
  struct PrecopyRound {
    round @0 :UInt32;
    # memory, rootfs diff and volumes read while running
    readBytes @1 :UInt64 $Json.name("read_bytes");
    sentBytes @2 :UInt64 $Json.name("sent_bytes");  # new to the target
    wireBytes @3 :UInt64 $Json.name("wire_bytes");
    ms @4 :UInt64;
  }
}

struct Message {
  version @0 :UInt16;
  id @1 :UInt64;
  union {
    # --- replies (carry the request's id) ---
    ok @2 :Void;
    error @3 :Stream.ErrorInfo;
    progress @4 :Progress;
    hosts @5 :List(Host);
    containers @6 :List(Container);
    container @7 :Container;
    obsoleteLogs @8 :List(Text);     # version 1's whole log; see logChunk
    migration @9 :MigrationFigures;
    history @10 :List(MigrationFigures);
    streamTicket @11 :StreamTicket;

    # --- agent -> coordinator ---
    hello @12 :Hello;
    heartbeat @13 :Heartbeat;

    # --- CLI -> coordinator ---
    ping @14 :Void;
    listHosts @15 :Void;
    listContainers @16 :Text;    # host, or "" for all
    run @17 :RunOn;
    stop @18 :Text;
    remove @19 :Text;
    obsoleteGetLogs @20 :Text;       # version 1; see getLogsFrom
    migrate @21 :Migrate;
    listHistory @22 :UInt32;     # how many

    # --- coordinator -> agent (commands) ---
    startContainer @23 :RunSpec;
    stopContainer @24 :Text;
    removeContainer @25 :Text;
    obsoleteReadLogs @26 :Text;      # version 1; see readLogsFrom
    prepareReceive @27 :PrepareReceive;   # target: bind a stream, answer with a ticket
    sendCheckpoint @28 :SendCheckpoint;   # source: freeze, stream, await the target
    commitSource @29 :Text;               # source: remove the frozen copy
    rollbackSource @30 :Text;             # source: resume the frozen copy
    discardTarget @31 :DiscardTarget;     # target: remove what this migration restored there

    # --- files between the CLI and an agent (bytes go straight between them) ---
    importFile @32 :ImportFile;           # CLI -> coordinator: answers with a ticket (and token)
    prepareImport @33 :ImportFile;        # coordinator -> agent: bind a stream for it
    checkpoint @34 :ExportTo;             # CLI -> coordinator: container's host streams it to the CLI
    exportCheckpoint @35 :ExportTo;       # coordinator -> agent
    inspectContainer @36 :Text;           # coordinator -> agent: answers with container
    sendImage @37 :SendImage;             # source: stream an image's file to a target's ticket

    # --- placement (CLI -> coordinator; drainHost also agent -> coordinator) ---
    cordon @38 :Cordon;
    drain @39 :Drain;
    rebalance @40 :Rebalance;
    placement @41 :Placement;             # reply to drain and rebalance
    drainHost @42 :Text;                  # an agent being stopped: drain me (answered with placement)

    # --- host secrets (CLI -> coordinator -> the host's agent) ---
    secret @43 :Secret;
    secrets @44 :List(SecretInfo);        # reply to secret.list

    # --- what hosts still owe, and the operator's override ---
    listPending @45 :Void;
    pending @46 :List(Pending);           # reply to listPending
    resumeSource @47 :ResumeSource;       # the operator: resume a frozen source now

    # --- a container's log from an offset (CLI -> coordinator -> its current host) ---
    getLogsFrom @48 :LogsFrom;            # CLI -> coordinator
    readLogsFrom @49 :LogsFrom;           # coordinator -> agent
    logChunk @50 :LogChunk;               # reply to both

    # --- the cluster network (coordinator -> agent, a reply to hello and heartbeat) ---
    network @51 :ClusterNetwork;
  }

  # Where a reader of a container's log (conmon's k8s-file) is: a byte
  # offset at a record's start, and the mark of the record that ends there,
  # by which the agent tells whether the offset still means the same place
  # (see engine/container_log.h). 0 and 0 for the start.
  struct LogsFrom {
    container @0 :Text;
    offset @1 :UInt64;
    mark @2 :UInt64;
  }
  struct LogChunk {
    lines @0 :List(Text);    # whole lines only, without their newline
    nextOffset @1 :UInt64;   # where the next read goes on
    mark @2 :UInt64;
    more @3 :Bool;           # cut at the agent's cap: read again at once
    restarted @4 :Bool;      # the offset was not in this log (cut, replaced): from its start
    ended @5 :Bool;          # the container has exited and all of its output is in the log
  }

  struct ResumeSource {
    migration @0 :UInt64;
    targetLost @1 :Bool;     # the operator's word that the target's copy is not running
  }

  struct Pending {
    id @0 :UInt64;
    host @1 :Text;
    action @2 :Text;         # discard | resume | resume-after-discard | remove-frozen
    container @3 :Text;
    migration @4 :UInt64;
    sinceMs @5 :Int64;       # unix ms
    waitingFor @6 :Text;     # what it waits for, in words
  }

  struct Secret {
    host @0 :Text;
    op @1 :Op;
    name @2 :Text;
    value @3 :Data;          # create; never logged
    replace @4 :Bool;
    enum Op {
      create @0;
      list @1;
      remove @2;
    }
  }
  struct SecretInfo {
    name @0 :Text;
    bytes @1 :UInt64;
    createdUnix @2 :Int64;
    usedBy @3 :List(Text);   # containers on the host given it
  }

  struct Cordon {
    host @0 :Text;
    cordoned @1 :Bool;       # false: uncordon
  }
  struct Drain {
    host @0 :Text;
    parallel @1 :UInt32;     # migrations at once (0: 1)
    deadlineMs @2 :UInt64;   # no new migration starts after this long (0: none)
    dryRun @3 :Bool;
  }
  struct Rebalance {
    dryRun @0 :Bool;
    highPercent @1 :Float32; # 0: 80
    lowPercent @2 :Float32;  # 0: 50
    maxMoves @3 :UInt32;     # 0: 10
  }

  struct Hello {
    name @0 :Text;
    dataEndpoint @1 :Text;
    info @2 :HostInfo;
    publicKey @3 :Text;     # Z85, when CURVE is configured
  }
  struct Heartbeat {
    name @0 :Text;
    load @1 :Load;
    containers @2 :List(Container);
    images @3 :List(ImageRef);
    secrets @4 :List(Text);  # the names in the host's secrets store
    network @5 :Text;        # the cluster network its containers can join ("" none)
    networkError @6 :Text;   # why it has none, when the coordinator has one
  }
  struct RunOn {
    host @0 :Text;
    spec @1 :RunSpec;
  }
  struct Migrate {
    container @0 :Text;
    source @1 :Text;
    target @2 :Text;
    ignore @3 :List(Text);  # compatibility checks overridden on purpose
    precopy @4 :Int32 = -1; # pre-copy rounds at most; 0 off; -1 auto
    tcpClose @5 :Bool;      # drop its TCP connections instead of keeping them
    postcopy @6 :Int8 = -1; # 1 on, 0 off, -1 auto
    compress @7 :Int32 = -1; # zstd level of the stream; 0 none; -1 auto (measured per link)
  }
  struct PrepareReceive {
    migration @0 :UInt64;
    container @1 :Text;
    token @2 :Data;          # one-time, for this stream only
    expectedBytes @3 :UInt64;
    ignore @4 :List(Text);   # the operator's --ignore: refusals the target's own check overrides too
    senderKey @5 :Text;      # the source agent's CURVE public key: the only key admitted to this stream
  }
  struct SendCheckpoint {
    migration @0 :UInt64;
    container @1 :Text;
    endpoint @2 :Text;
    token @3 :Data;
    serverKey @4 :Text;      # the target's CURVE public key, when configured
    precopy @5 :Int32 = -1;  # as Migrate.precopy
    tcpClose @6 :Bool;       # as Migrate.tcpClose
    postcopy @7 :Bool;       # memory after the restore, on demand (decided by the coordinator)
    compress @8 :Int32 = -1; # as Migrate.compress
    nftablesLock @9 :Bool;   # CRIU locks the network with nftables: both hosts' CRIU can
  }
  struct SendImage {
    image @0 :Text;          # name
    endpoint @1 :Text;
    token @2 :Data;
    serverKey @3 :Text;
    target @4 :Text;         # the host it goes to (for messages)
  }
  struct DiscardTarget {
    migration @0 :UInt64;
    container @1 :Text;
  }
  struct ImportFile {
    host @0 :Text;
    kind @1 :Kind;
    name @2 :Text;           # image name; or the restored container's name ("": as recorded)
    token @3 :Data;          # set by the coordinator
    ignore @4 :List(Text);   # restore: compatibility checks overridden on purpose
    replaceVolumes @5 :Bool;
    senderKey @6 :Text;      # set by the coordinator: the only CURVE key admitted to this stream
    enum Kind {
      image @0;
      checkpoint @1;
    }
  }
  struct ExportTo {
    container @0 :Text;
    endpoint @1 :Text;       # the CLI's receiver
    token @2 :Data;
    serverKey @3 :Text;
    leaveRunning @4 :Bool;
    level @5 :Int32;         # zstd level, 0 none
  }
}

struct StreamTicket {
  endpoint @0 :Text;
  serverKey @1 :Text;
  token @2 :Data;            # for a ticket the coordinator relays to the CLI
}
