package dev.kiln.compiler;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.compiler.ExecutionPlan.DeviceMemory;
import dev.kiln.compiler.Topology.ActorPlacement;
import dev.kiln.compiler.Topology.PeerAccess;
import dev.kiln.graph.Transport;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.function.IntFunction;

/**
 * Resolves the transports of GPU edges (values of methods declared to return {@code DeviceTensor} and all-reduce
 * outputs), checks and books the all-reduces, and accounts the device memory the plan holds. All-reduces are booked
 * first (they have no fallback), then edges one by one in channel order; each sees the device memory and NCCL ranks
 * booked before it, so the outcome is deterministic.
 *
 * <p>Devices: a GPU is its host and UUID ({@link ActorPlacement#sameDevice}), whatever index each JVM gives it.
 * Messages name it {@code host/gpuN} by the index of the actor they speak of, with {@code [uuid]} where the index
 * alone is ambiguous.
 *
 * <p>Memory model: a direct GPU edge ({@link Transport#GPU_SAME_DEVICE}, {@link Transport#CUDA_IPC},
 * {@link Transport#NCCL}) holds {@code slots * slotBytes} of receive slots on the device of each of its readers
 * (readers do not share slots); a {@link Transport#STAGED} edge holds its slots in host memory and one
 * {@code slotBytes} buffer on the device of each reader with a GPU, for the copy to the device before the call; an
 * all-reduce holds one {@code slotBytes} output buffer on each member's device. A device that holds an NCCL rank
 * also holds NCCL's buffers: per communicator with a rank on it, {@link CompileOptions#NCCL_RANK_BYTES} plus
 * {@link CompileOptions#NCCL_PEER_BYTES} per peer that rank talks to (its point-to-point peers, and in each
 * collective on that communicator its ring neighbours in member order: one with two members, else two). The budget
 * of a device is its free memory (the smallest the participants on it reported) times
 * {@link CompileOptions#gpuMemoryFraction()}. An edge fits when, on every device where it adds receive slots or
 * NCCL buffers, what is held there plus the addition stays within the budget; otherwise AUTO falls back to STAGED
 * (with the numbers in the reason) and an asked transport fails the compile. An all-reduce that does not fit fails
 * the compile. Staging buffers are booked without a check (no further fallback).
 *
 * <p>NCCL model: communicator 0 for point-to-point edges, whose ranks are the actors of its NCCL edges, and one per
 * distinct member set of the all-reduces (shared with communicator 0 when the sets are equal). NCCL refuses two
 * ranks of one communicator on one GPU: an edge that would put two actors of one device into communicator 0 is not
 * given NCCL, and an all-reduce with two members on one device is refused. The driver is never a rank. CUDA IPC
 * between two different devices needs peer access ({@code cudaIpcOpenMemHandle} maps another device's memory only
 * through it). Not thread-safe: one per compilation.
 */
final class GpuPlanner {

    private final CompileOptions options;
    private final PeerAccess peerAccess;
    private final IntFunction<ActorPlacement> placements;
    private final IntFunction<String> names;
    private final DeviceNames deviceNames = new DeviceNames();
    private final Map<Device, Long> free = new HashMap<>();
    private final Map<Device, Integer> index = new HashMap<>();
    /** Receive slots, staging and all-reduce buffers by device; NCCL's buffers are derived from the ranks. */
    private final Map<Device, Long> held = new HashMap<>();
    /** Point-to-point NCCL ranks (communicator 0) and the ranks each talks to. */
    private final Map<Integer, Set<Integer>> p2p = new LinkedHashMap<>();
    /** Members of each booked all-reduce, in member order. */
    private final List<List<Integer>> collectives = new ArrayList<>();

    /** A GPU: host and UUID. */
    private record Device(String host, String uuid) {
        static Device of(ActorPlacement p) {
            return new Device(p.host(), p.deviceUuid());
        }
    }

    /** NCCL ranks and their peers on one device, over all communicators. */
    private record Usage(int ranks, int peers) {
        static final Usage NONE = new Usage(0, 0);

        long bytes() {
            return ranks * CompileOptions.NCCL_RANK_BYTES + peers * CompileOptions.NCCL_PEER_BYTES;
        }
    }

    /**
     * @param options      the options (slots, slot bytes, memory fraction)
     * @param peerAccess   which devices of a host have peer access
     * @param participants every participant of the plan: the actors in schedule order, then {@link ExecutionPlan#DRIVER}
     * @param placements   placement of a participant
     * @param names        readable name of a participant
     */
    GpuPlanner(CompileOptions options, PeerAccess peerAccess, List<Integer> participants,
               IntFunction<ActorPlacement> placements, IntFunction<String> names) {
        this.options = options;
        this.peerAccess = peerAccess;
        this.placements = placements;
        this.names = names;
        for (int p : participants) {
            ActorPlacement at = placements.apply(p);
            if (at.hasGpu()) {
                Device d = Device.of(at);
                free.merge(d, at.freeDeviceBytes(), Math::min);
                index.putIfAbsent(d, at.device());
                held.putIfAbsent(d, 0L);
                deviceNames.add(at);
            }
        }
    }

    /** @return the memory of every GPU of the plan, by host, then device index, then UUID */
    List<DeviceMemory> devices() {
        Map<Device, Usage> nccl = usage(p2p, collectives);
        List<Device> all = new ArrayList<>(free.keySet());
        all.sort(Comparator.comparing(Device::host).thenComparing(index::get).thenComparing(Device::uuid));
        List<DeviceMemory> memory = new ArrayList<>();
        for (Device d : all) {
            long ncclBytes = nccl.getOrDefault(d, Usage.NONE).bytes();
            memory.add(new DeviceMemory(d.host, index.get(d), d.uuid, free.get(d), budget(d),
                    saturatedAdd(held.get(d), ncclBytes), ncclBytes));
        }
        return memory;
    }

    /**
     * Checks an all-reduce against the placements and books its output buffers and NCCL ranks. Call for every
     * all-reduce, in id order, before the first {@link #resolve}.
     *
     * @param id      the collective's id
     * @param members the member actors, in member order
     * @param label   the label of member i's output node, for errors
     * @throws GraphCompileException when a member has no GPU, two members share a GPU, or it does not fit
     */
    void collective(int id, List<Integer> members, IntFunction<String> label) {
        for (int i = 0; i < members.size(); i++) {
            ActorPlacement at = placements.apply(members.get(i));
            if (!at.hasGpu()) {
                throw new GraphCompileException(label.apply(i), "member " + i + " of allreduce#" + id + ", "
                        + name(members.get(i)) + " (" + at + "), has no GPU; an all-reduce runs on NCCL, which needs "
                        + "every member on a GPU: place " + name(members.get(i)) + " on one (ActorOptions.gpu(n))");
            }
            for (int j = 0; j < i; j++) {
                ActorPlacement other = placements.apply(members.get(j));
                if (other.sameDevice(at)) {
                    throw new GraphCompileException(label.apply(i), "members " + j + " and " + i + " of allreduce#" + id
                            + ", " + name(members.get(j)) + " and " + name(members.get(i)) + ", "
                            + sameGpu(members.get(j), members.get(i)) + ", and NCCL refuses two ranks of one "
                            + "communicator on one GPU; place the members on different GPUs");
                }
            }
        }
        List<List<Integer>> after = new ArrayList<>(collectives);
        after.add(List.copyOf(members));
        Addition buffers = new Addition("its output buffer", "CompileOptions.bufferBytes, for the sum");
        for (int m : members) {
            buffers.add(m, placements.apply(m), options.bufferBytes());
        }
        Misfit misfit = misfit(buffers, usage(p2p, after));
        if (misfit != null) {
            int member = members.indexOf(buffers.who.getOrDefault(misfit.device, members).getFirst());
            throw new GraphCompileException(label.apply(member), "allreduce#" + id + " does not fit: " + misfit.text
                    + "; an all-reduce has no fallback: raise CompileOptions.gpuMemoryFraction or lower bufferBytes, "
                    + "or place its members on GPUs with more free memory");
        }
        buffers.buffers.forEach((d, bytes) -> held.merge(d, bytes, GpuPlanner::saturatedAdd));
        collectives.add(List.copyOf(members));
    }

    /**
     * Resolves one GPU edge and books its device memory.
     *
     * @param id      channel id
     * @param node    node id
     * @param writer  the writing actor
     * @param readers the readers, in reader order
     * @param asked   the transport the node asked for
     * @param label   the node's label, for errors
     * @return the channel
     * @throws GraphCompileException when the asked transport cannot connect the participants or does not fit
     */
    ChannelSpec resolve(int id, int node, int writer, List<Integer> readers, Transport asked, String label) {
        ActorPlacement from = placements.apply(writer);
        String refusal = switch (asked) {
            case IN_PROCESS, SHARED_MEMORY, AERON_UDP -> "Transport." + asked + " was asked for, but " + label
                    + " returns a DeviceTensor (device memory), which it cannot carry; use Transport.AUTO, "
                    + "GPU_SAME_DEVICE, CUDA_IPC, NCCL or STAGED";
            default -> null;
        };
        if (refusal != null) {
            throw new GraphCompileException(label, refusal);
        }
        if (asked == Transport.STAGED) {
            return staged(id, node, writer, readers, "asked", label);
        }
        String noGpu = withoutGpu(writer, readers);
        if (noGpu != null) {
            if (asked != Transport.AUTO) {
                throw new GraphCompileException(label, "Transport." + asked + " was asked for, but " + noGpu
                        + " has no GPU; use Transport.AUTO or STAGED");
            }
            return staged(id, node, writer, readers, "AUTO: " + noGpu + " has no GPU", label);
        }
        Transport direct = Transport.GPU_SAME_DEVICE;
        String why = "writer and readers in one JVM on " + deviceNames.device(from);
        for (int r : readers) {
            ActorPlacement to = placements.apply(r);
            if (to.sameProcess(from) && to.sameDevice(from)) {
                continue;
            }
            if (to.host().equals(from.host()) && !to.sameProcess(from) && peered(from, to)) {
                if (direct == Transport.GPU_SAME_DEVICE) {
                    direct = Transport.CUDA_IPC;
                    why = name(r) + " in another JVM of " + from.host() + ", all on GPUs";
                }
            } else if (direct != Transport.NCCL) {
                direct = Transport.NCCL;
                why = !to.host().equals(from.host()) ? name(r) + " on another host (" + deviceNames.where(to) + ")"
                        : to.sameProcess(from) ? name(r) + " on another GPU (" + deviceNames.where(to) + ")"
                        : name(r) + " in another JVM of " + to.host() + " on " + deviceNames.gpu(to)
                        + ", without peer access to " + deviceNames.gpu(from);
            }
        }
        if (asked != Transport.AUTO) {
            checkAsked(asked, from, writer, readers, label);
            direct = asked;
            why = "asked";
        }
        String ncclProblem = direct == Transport.NCCL ? ncclProblem(writer, readers) : null;
        if (ncclProblem != null) {
            if (asked != Transport.AUTO) {
                throw new GraphCompileException(label, "Transport.NCCL was asked for, but " + ncclProblem
                        + "; use Transport.AUTO or STAGED");
            }
            return staged(id, node, writer, readers, "AUTO would pick NCCL (" + why + "), but " + ncclProblem, label);
        }
        Map<Integer, Set<Integer>> p2pAfter = direct == Transport.NCCL ? withPeers(writer, readers) : p2p;
        Addition slots = new Addition("its receive slots", options.maxInflight() + " slots x " + options.bufferBytes()
                + " B each");
        for (int r : readers) {
            slots.add(r, placements.apply(r), slotsBytes());
        }
        slots.touch(from);
        Misfit misfit = misfit(slots, usage(p2pAfter, collectives));
        if (misfit != null) {
            if (asked != Transport.AUTO) {
                throw new GraphCompileException(label, "Transport." + asked + " was asked for, but " + misfit.text
                        + "; raise CompileOptions.gpuMemoryFraction, lower bufferBytes or maxInflight, "
                        + "or use Transport.AUTO or STAGED");
            }
            return staged(id, node, writer, readers, "AUTO would pick " + direct + " (" + why + "), but "
                    + misfit.text, label);
        }
        slots.buffers.forEach((d, bytes) -> held.merge(d, bytes, GpuPlanner::saturatedAdd));
        if (direct == Transport.NCCL) {
            p2p.clear();
            p2p.putAll(p2pAfter);
        }
        return new ChannelSpec(id, node, writer, readers, options.maxInflight(), options.bufferBytes(), direct,
                asked == Transport.AUTO ? "AUTO: " + why : why);
    }

    /** Whether a process on {@code from}'s device can map memory of {@code to}'s (its own, or through peer access). */
    private boolean peered(ActorPlacement from, ActorPlacement to) {
        return peerAccess.has(from.host(), from.deviceUuid(), to.deviceUuid());
    }

    private void checkAsked(Transport asked, ActorPlacement from, int writer, List<Integer> readers, String label) {
        for (int r : readers) {
            ActorPlacement to = placements.apply(r);
            String problem = switch (asked) {
                case GPU_SAME_DEVICE -> to.sameProcess(from) && to.sameDevice(from) ? null
                        : name(r) + " (" + deviceNames.where(to) + ") is not in " + name(writer) + "'s JVM on its GPU ("
                        + deviceNames.where(from) + "); use Transport.AUTO";
                case CUDA_IPC -> !to.host().equals(from.host())
                        ? name(r) + " (" + deviceNames.where(to) + ") is on another host than " + name(writer) + " ("
                        + deviceNames.where(from) + "); use Transport.AUTO"
                        : !to.sameProcess(from) && !peered(from, to)
                        ? name(r) + " (" + deviceNames.where(to) + ") is in another JVM on a GPU without peer access to "
                        + name(writer) + "'s (" + deviceNames.where(from) + "), and cudaIpcOpenMemHandle maps another "
                        + "device's memory only through peer access; use Transport.AUTO (NCCL, or STAGED), or place "
                        + name(r) + " on " + name(writer) + "'s GPU or one with peer access to it"
                        : null;
                default -> null;
            };
            if (problem != null) {
                throw new GraphCompileException(label, "Transport." + asked + " was asked for, but " + problem);
            }
        }
    }

    /** @return who of writer and readers has no GPU, or null */
    private String withoutGpu(int writer, List<Integer> readers) {
        if (!placements.apply(writer).hasGpu()) {
            return "writer " + name(writer);
        }
        for (int r : readers) {
            if (!placements.apply(r).hasGpu()) {
                return r == ExecutionPlan.DRIVER ? "the driver" : "reader " + name(r);
            }
        }
        return null;
    }

    /** @return why the participants cannot join the point-to-point communicator, or null if they can */
    private String ncclProblem(int writer, List<Integer> readers) {
        if (readers.contains(ExecutionPlan.DRIVER)) {
            return "the driver reads it and cannot be an NCCL rank";
        }
        List<Integer> members = new ArrayList<>(p2p.keySet());
        List<Integer> joining = new ArrayList<>();
        joining.add(writer);
        joining.addAll(readers);
        for (int p : joining) {
            if (members.contains(p)) {
                continue;
            }
            for (int m : members) {
                if (placements.apply(m).sameDevice(placements.apply(p))) {
                    return "NCCL cannot hold two ranks on one GPU: " + name(m) + " and " + name(p) + " " + sameGpu(m, p);
                }
            }
            members.add(p);
        }
        return null;
    }

    /** @return {@code both use host/gpuN}, or how each numbers the GPU when their indices differ */
    private String sameGpu(int a, int b) {
        ActorPlacement pa = placements.apply(a);
        ActorPlacement pb = placements.apply(b);
        if (pa.device() == pb.device()) {
            return "both use " + deviceNames.device(pa);
        }
        return "both use GPU " + pa.deviceUuid() + " of " + pa.host() + " (gpu" + pa.device() + " in " + name(a)
                + "'s JVM, gpu" + pb.device() + " in " + name(b) + "'s)";
    }

    /** @return the point-to-point ranks and peers once the writer and readers exchange over NCCL */
    private Map<Integer, Set<Integer>> withPeers(int writer, List<Integer> readers) {
        Map<Integer, Set<Integer>> after = new LinkedHashMap<>();
        p2p.forEach((rank, peers) -> after.put(rank, new LinkedHashSet<>(peers)));
        for (int r : readers) {
            after.computeIfAbsent(writer, k -> new LinkedHashSet<>()).add(r);
            after.computeIfAbsent(r, k -> new LinkedHashSet<>()).add(writer);
        }
        return after;
    }

    /**
     * NCCL's ranks and peers per device: one communicator for the point-to-point ranks and one per distinct member
     * set of the collectives, merged where the rank sets are equal; a rank's peers are its point-to-point peers and
     * its ring neighbours (in member order) in each collective on that communicator.
     */
    private Map<Device, Usage> usage(Map<Integer, Set<Integer>> pointToPoint, List<List<Integer>> groups) {
        Map<Set<Integer>, Map<Integer, Set<Integer>>> comms = new LinkedHashMap<>();
        if (!pointToPoint.isEmpty()) {
            Map<Integer, Set<Integer>> peers = new HashMap<>();
            pointToPoint.forEach((rank, ps) -> peers.put(rank, new LinkedHashSet<>(ps)));
            comms.put(Set.copyOf(pointToPoint.keySet()), peers);
        }
        for (List<Integer> members : groups) {
            Map<Integer, Set<Integer>> peers = comms.computeIfAbsent(Set.copyOf(members), k -> new HashMap<>());
            int n = members.size();
            for (int i = 0; i < n; i++) {
                Set<Integer> mine = peers.computeIfAbsent(members.get(i), k -> new LinkedHashSet<>());
                mine.add(members.get((i + n - 1) % n));
                mine.add(members.get((i + 1) % n));
                mine.remove(members.get(i));
            }
        }
        Map<Device, Usage> usage = new HashMap<>();
        for (Map<Integer, Set<Integer>> comm : comms.values()) {
            comm.forEach((rank, peers) -> usage.merge(Device.of(placements.apply(rank)), new Usage(1, peers.size()),
                    (x, y) -> new Usage(x.ranks + y.ranks, x.peers + y.peers)));
        }
        return usage;
    }

    /**
     * What an edge or all-reduce adds to the devices it touches: buffers by device, the participants they are for,
     * the participant that names each device in messages, and what one participant's buffers are.
     */
    private static final class Addition {
        final Map<Device, Long> buffers = new LinkedHashMap<>();
        final Map<Device, List<Integer>> who = new LinkedHashMap<>();
        final Map<Device, ActorPlacement> namedBy = new LinkedHashMap<>();
        final String kind;
        final String each;

        /**
         * @param kind what the buffers are, e.g. {@code its receive slots}
         * @param each what one participant's buffers are, e.g. {@code 10 slots x 1048576 B each}
         */
        Addition(String kind, String each) {
            this.kind = kind;
            this.each = each;
        }

        /** A device the addition may grow NCCL's buffers on, without buffers of its own. */
        void touch(ActorPlacement at) {
            Device d = Device.of(at);
            buffers.putIfAbsent(d, 0L);
            namedBy.putIfAbsent(d, at);
        }

        void add(int participant, ActorPlacement at, long bytes) {
            Device d = Device.of(at);
            buffers.merge(d, bytes, GpuPlanner::saturatedAdd);
            who.computeIfAbsent(d, k -> new ArrayList<>()).add(participant);
            namedBy.putIfAbsent(d, at);
        }
    }

    /** The device an addition overflows, and why, with the numbers. */
    private record Misfit(Device device, String text) {
    }

    /**
     * @param addition  the buffers to book
     * @param ncclAfter NCCL's ranks and peers per device once the addition is booked
     * @return the first device the addition does not fit (the addition's devices in order, then the others), or null
     */
    private Misfit misfit(Addition addition, Map<Device, Usage> ncclAfter) {
        Map<Device, Usage> ncclBefore = usage(p2p, collectives);
        Set<Device> devices = new LinkedHashSet<>(addition.buffers.keySet());
        List<Device> others = new ArrayList<>(ncclAfter.keySet());
        others.sort(Comparator.comparing(Device::host).thenComparing(index::get).thenComparing(Device::uuid));
        devices.addAll(others);
        for (Device d : devices) {
            long buffer = addition.buffers.getOrDefault(d, 0L);
            long before = ncclBefore.getOrDefault(d, Usage.NONE).bytes();
            Usage after = ncclAfter.getOrDefault(d, Usage.NONE);
            long ncclDelta = after.bytes() - before;
            long used = saturatedAdd(held.get(d), before);
            long added = saturatedAdd(buffer, ncclDelta);
            if (added <= 0 || saturatedAdd(used, added) <= budget(d)) {
                continue;
            }
            List<String> parts = new ArrayList<>();
            String what = "its NCCL buffers";
            if (buffer > 0) {
                List<Integer> on = addition.who.get(d);
                parts.add(String.format(Locale.ROOT, "%s %s %d B (%s)", String.join(" and ",
                        on.stream().map(this::name).toList()), on.size() == 1 ? "needs" : "need", buffer, addition.each));
                what = ncclDelta != 0 ? addition.kind + " and NCCL buffers" : addition.kind;
            }
            if (ncclDelta != 0) {
                parts.add(String.format(Locale.ROOT, "NCCL buffers there %s by %d B to %d B (%d %s x "
                                + "CompileOptions.NCCL_RANK_BYTES %d B + %d %s x CompileOptions.NCCL_PEER_BYTES %d B)",
                        ncclDelta > 0 ? "grow" : "shrink", Math.abs(ncclDelta), after.bytes(), after.ranks,
                        after.ranks == 1 ? "rank" : "ranks", CompileOptions.NCCL_RANK_BYTES, after.peers,
                        after.peers == 1 ? "peer" : "peers", CompileOptions.NCCL_PEER_BYTES));
            }
            ActorPlacement namedBy = addition.namedBy.get(d);
            String device = namedBy != null ? deviceNames.device(namedBy)
                    : d.host + "/" + deviceNames.gpu(d.host, index.get(d), d.uuid);
            return new Misfit(d, String.format(Locale.ROOT, "%s %s not fit on %s: %s, %d B are already held there, "
                            + "budget %d B (free %d B x CompileOptions.gpuMemoryFraction %s)", what,
                    what.equals("its output buffer") ? "does" : "do", device, String.join(", ", parts), used,
                    budget(d), free.get(d), options.gpuMemoryFraction()));
        }
        return null;
    }

    private ChannelSpec staged(int id, int node, int writer, List<Integer> readers, String reason, String label) {
        ActorPlacement from = placements.apply(writer);
        for (int r : readers) {
            ActorPlacement to = placements.apply(r);
            if (!to.host().equals(from.host())) {
                throw new GraphCompileException(label, "Transport.STAGED (" + reason + ") cannot connect "
                        + deviceNames.where(from) + " and " + deviceNames.where(to) + ": staging between hosts is not "
                        + "supported yet; give every participant a GPU with room for the receive slots (NCCL connects "
                        + "hosts), or place them on one host");
            }
        }
        for (int r : readers) {
            ActorPlacement to = placements.apply(r);
            if (to.hasGpu()) {
                held.merge(Device.of(to), options.bufferBytes(), GpuPlanner::saturatedAdd);
            }
        }
        return new ChannelSpec(id, node, writer, readers, options.maxInflight(), options.bufferBytes(),
                Transport.STAGED, reason);
    }

    private long budget(Device d) {
        return (long) Math.floor(free.get(d) * options.gpuMemoryFraction());
    }

    private long slotsBytes() {
        long bytes = options.bufferBytes();
        return bytes > Long.MAX_VALUE / options.maxInflight() ? Long.MAX_VALUE : bytes * options.maxInflight();
    }

    private String name(int participant) {
        return names.apply(participant);
    }

    private static long saturatedAdd(long a, long b) {
        long sum = a + b;
        if (b > 0 && sum < a) {
            return Long.MAX_VALUE;
        }
        return sum;
    }
}
