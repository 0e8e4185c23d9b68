// A heartbeat read within bounds (issue 14, hole 6). Heartbeats come every
// second from every host, and what they say is kept until the next one: a
// heartbeat that could name ever more, ever longer things would grow the
// coordinator without end. What is past a bound is left out, with the
// reason in HeartbeatReport::refused (the coordinator logs it once per
// host while it lasts); what is kept replaces the host's last report.
#pragma once

#include <cstddef>
#include <string>

#include "coordinator/host_registry.h"
#include "protocol/control.capnp.h"

namespace ferry::coord {

// Per heartbeat: containers, images and secrets (each); a container's
// secrets; the length of an image name or id, a status, an sd_notify status.
inline constexpr size_t kMaxReportedContainers = 4096;
inline constexpr size_t kMaxReportedImages = 4096;
inline constexpr size_t kMaxReportedSecrets = 4096;
inline constexpr size_t kMaxContainerSecrets = 256;
inline constexpr size_t kMaxReportedText = 255;

// `host`'s heartbeat. Names that are not valid names (common/names.h) and
// duplicates are left out; lists past their bound are cut; an sd_notify
// status past its bound is cut short.
// A container's address, MAC and ports as an agent reports them, where they
// parse (else none).
void readAddress(proto::Container::Reader c, ContainerRow& row);

HeartbeatReport readHeartbeat(const std::string& host, proto::Message::Heartbeat::Reader h);

}  // namespace ferry::coord
