package dev.kiln.compiler;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.compiler.ExecutionPlan.DeviceMemory;
import dev.kiln.compiler.Topology.ActorPlacement;
import dev.kiln.graph.Transport;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.IntFunction;

/**
 * Resolves the transports of GPU edges (values of methods declared to return {@code DeviceTensor})
 * and accounts the device memory they hold. Edges are resolved one by one in channel order, and each
 * sees the device memory and NCCL ranks of the edges before it, so the outcome is deterministic.
 *
 * <p>Memory model: a direct GPU edge ({@link Transport#GPU_SAME_DEVICE}, {@link Transport#CUDA_IPC},
 * {@link Transport#NCCL}) holds {@code slots * slotBytes} of receive slots on the device of each of
 * its readers (readers do not share slots); a {@link Transport#STAGED} edge holds its slots in host
 * memory and one {@code slotBytes} buffer on the device of each reader with a GPU, for the copy to the
 * device before the call. The budget of a device is its free memory (the smallest the actors on it
 * reported) times {@link CompileOptions#gpuMemoryFraction()}.
 *
 * <p>NCCL model: one communicator for the plan, whose ranks are the actors of its NCCL edges. NCCL
 * refuses two ranks on one GPU, so an edge that would put two actors of one device into the
 * communicator is not given NCCL. The driver is never a rank. Not thread-safe: one per compilation.
 */
final class GpuPlanner {

    private final CompileOptions options;
    private final IntFunction<ActorPlacement> placements;
    private final IntFunction<String> names;
    private final Map<Device, Long> free = new TreeMap<>();
    private final Map<Device, Long> held = new TreeMap<>();
    private final Set<Integer> ncclRanks = new LinkedHashSet<>();

    /** A GPU: host and device index. */
    private record Device(String host, int index) implements Comparable<Device> {
        private static final Comparator<Device> ORDER = Comparator.comparing(Device::host).thenComparingInt(Device::index);

        static Device of(ActorPlacement p) {
            return new Device(p.host(), p.device());
        }

        @Override
        public int compareTo(Device o) {
            return ORDER.compare(this, o);
        }

        @Override
        public String toString() {
            return host + "/gpu" + index;
        }
    }

    /**
     * @param options      the options (slots, slot bytes, memory fraction)
     * @param participants every participant of the plan: the actors and {@link ExecutionPlan#DRIVER}
     * @param placements   placement of a participant
     * @param names        readable name of a participant
     */
    GpuPlanner(CompileOptions options, List<Integer> participants, IntFunction<ActorPlacement> placements,
               IntFunction<String> names) {
        this.options = options;
        this.placements = placements;
        this.names = names;
        for (int p : participants) {
            ActorPlacement at = placements.apply(p);
            if (at.hasGpu()) {
                free.merge(Device.of(at), at.freeDeviceBytes(), Math::min);
                held.putIfAbsent(Device.of(at), 0L);
            }
        }
    }

    /** @return the memory of every GPU of the plan, by host then device index */
    List<DeviceMemory> devices() {
        List<DeviceMemory> all = new ArrayList<>();
        for (var e : free.entrySet()) {
            Device d = e.getKey();
            all.add(new DeviceMemory(d.host, d.index, e.getValue(), budget(d), held.get(d)));
        }
        return all;
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
        String why = "writer and readers in one JVM on " + Device.of(from);
        for (int r : readers) {
            ActorPlacement to = placements.apply(r);
            if (to.sameProcess(from) && to.sameDevice(from)) {
                continue;
            }
            if (to.host().equals(from.host()) && !to.sameProcess(from)) {
                if (direct == Transport.GPU_SAME_DEVICE) {
                    direct = Transport.CUDA_IPC;
                    why = name(r) + " in another JVM of " + from.host() + ", all on GPUs";
                }
            } else if (direct != Transport.NCCL) {
                direct = Transport.NCCL;
                why = to.host().equals(from.host()) ? name(r) + " on another GPU (" + to + ")"
                        : name(r) + " on another host (" + to + ")";
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
        String misfit = misfit(readers);
        if (misfit != null) {
            if (asked != Transport.AUTO) {
                throw new GraphCompileException(label, "Transport." + asked + " was asked for, but " + misfit
                        + "; raise CompileOptions.gpuMemoryFraction, lower bufferBytes or maxInflight, "
                        + "or use Transport.AUTO or STAGED");
            }
            return staged(id, node, writer, readers, "AUTO would pick " + direct + " (" + why + "), but " + misfit,
                    label);
        }
        for (int r : readers) {
            held.merge(Device.of(placements.apply(r)), slotsBytes(), GpuPlanner::saturatedAdd);
        }
        if (direct == Transport.NCCL) {
            ncclRanks.add(writer);
            ncclRanks.addAll(readers);
        }
        return new ChannelSpec(id, node, writer, readers, options.maxInflight(), options.bufferBytes(), direct,
                asked == Transport.AUTO ? "AUTO: " + why : why);
    }

    private void checkAsked(Transport asked, ActorPlacement from, int writer, List<Integer> readers, String label) {
        for (int r : readers) {
            ActorPlacement to = placements.apply(r);
            String problem = switch (asked) {
                case GPU_SAME_DEVICE -> to.sameProcess(from) && to.sameDevice(from) ? null
                        : name(r) + " (" + to + ") is not in " + name(writer) + "'s JVM on its GPU (" + from + ")";
                case CUDA_IPC -> to.host().equals(from.host()) ? null
                        : name(r) + " (" + to + ") is on another host than " + name(writer) + " (" + from + ")";
                default -> null;
            };
            if (problem != null) {
                throw new GraphCompileException(label, "Transport." + asked + " was asked for, but " + problem
                        + "; use Transport.AUTO");
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

    /** @return why the participants cannot join the plan's communicator, or null if they can */
    private String ncclProblem(int writer, List<Integer> readers) {
        if (readers.contains(ExecutionPlan.DRIVER)) {
            return "the driver reads it and cannot be an NCCL rank";
        }
        List<Integer> members = new ArrayList<>(ncclRanks);
        List<Integer> joining = new ArrayList<>();
        joining.add(writer);
        joining.addAll(readers);
        for (int p : joining) {
            if (members.contains(p)) {
                continue;
            }
            for (int m : members) {
                if (placements.apply(m).sameDevice(placements.apply(p))) {
                    return "NCCL cannot hold two ranks on one GPU: " + name(m) + " and " + name(p) + " both use "
                            + Device.of(placements.apply(p));
                }
            }
            members.add(p);
        }
        return null;
    }

    /** @return why the readers' receive slots do not fit their devices' budgets, or null if they fit */
    private String misfit(List<Integer> readers) {
        Map<Device, Long> need = new LinkedHashMap<>();
        Map<Device, List<String>> who = new LinkedHashMap<>();
        for (int r : readers) {
            Device d = Device.of(placements.apply(r));
            need.merge(d, slotsBytes(), GpuPlanner::saturatedAdd);
            who.computeIfAbsent(d, k -> new ArrayList<>()).add(name(r));
        }
        for (var e : need.entrySet()) {
            Device d = e.getKey();
            long used = held.get(d);
            long budget = budget(d);
            if (saturatedAdd(used, e.getValue()) > budget) {
                return String.format(Locale.ROOT, "its receive slots do not fit on %s: %s %s %d B "
                                + "(%d slots x %d B each), %d B are already held there, budget %d B "
                                + "(free %d B x CompileOptions.gpuMemoryFraction %s)", d,
                        String.join(" and ", who.get(d)), who.get(d).size() == 1 ? "needs" : "need", e.getValue(),
                        options.maxInflight(), options.bufferBytes(), used, budget, free.get(d),
                        options.gpuMemoryFraction());
            }
        }
        return null;
    }

    private ChannelSpec staged(int id, int node, int writer, List<Integer> readers, String reason, String label) {
        ActorPlacement from = placements.apply(writer);
        for (int r : readers) {
            ActorPlacement to = placements.apply(r);
            if (!to.host().equals(from.host())) {
                throw new GraphCompileException(label, "Transport.STAGED (" + reason + ") cannot connect " + from
                        + " and " + to + ": staging between hosts is not supported yet; give every participant a GPU "
                        + "with room for the receive slots (NCCL connects hosts), or place them on one host");
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
        return sum < 0 ? Long.MAX_VALUE : sum;
    }
}
