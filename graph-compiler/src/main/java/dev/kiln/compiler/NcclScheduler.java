package dev.kiln.compiler;

import dev.kiln.compiler.ExecutionPlan.ActorSchedule;
import dev.kiln.compiler.ExecutionPlan.AllReduce;
import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.compiler.ExecutionPlan.CollectiveSpec;
import dev.kiln.compiler.ExecutionPlan.CommGroup;
import dev.kiln.compiler.ExecutionPlan.CommOp;
import dev.kiln.compiler.ExecutionPlan.CommunicatorSpec;
import dev.kiln.compiler.ExecutionPlan.Compute;
import dev.kiln.compiler.ExecutionPlan.NcclSchedule;
import dev.kiln.compiler.ExecutionPlan.Operation;
import dev.kiln.compiler.ExecutionPlan.Read;
import dev.kiln.compiler.ExecutionPlan.Write;
import dev.kiln.graph.Transport;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Orders the operations of a plan that has NCCL channels or all-reduces so that NCCL operations cannot
 * deadlock, assigns the communicators, and derives each rank's groups.
 *
 * <p>An NCCL send blocks until its receiver posts the matching receive (and a receive until its
 * send), and a collective until every member has issued it, so the actors' bind-order schedules may
 * deadlock: actor A sends x to B and then y to C, while B first receives z from C, which first receives
 * y from A. Like Ray's compiled graphs, the operations of one execution form a graph (on each actor: a
 * READ before the COMPUTE it was laid out for, COMPUTEs in bind order, a WRITE or an ALLREDUCE after the
 * operation that fills its local, every operation before the next COMPUTE; across actors: a WRITE before
 * the READs of its channel), in which an NCCL WRITE and all the READs of its channel form one group, and
 * the ALLREDUCEs of all members of one all-reduce form one group. A topological sort appends a group to
 * all its members' schedules in one step, so every rank's NCCL operations are the projection of one global
 * order: for any pair of ranks the sends of one match the receives of the other in order, the members of a
 * communicator issue its collectives in one order, and the schedules complete (the earliest unfinished
 * group always has all its members waiting at it).
 *
 * <p>Without {@code overlapGpuCommunication}, each actor keeps its bind order where it can: an
 * operation is appended when it is its actor's next operation in bind order, a group when it is so
 * for every member; only when every actor waits that way is the first ready group (by actor, then
 * index, of its WRITE or its first member) released out of bind order, which is what breaks the cycle
 * above. With it, a group is released as soon as all its members are ready (a point-to-point group: its
 * WRITE), so receives move ahead of the reader's earlier computes. Plans without NCCL channels and
 * all-reduces keep their bind order: there a WRITE never waits for a reader within an execution. Pure.
 */
final class NcclScheduler {

    private final List<ActorSchedule> schedules;
    private final List<ChannelSpec> channels;
    private final boolean overlap;
    /** Operation ids: actor a's operation i is {@code offset[a] + i}. */
    private final int[] offset;
    private final int size;
    private final List<List<Integer>> successors = new ArrayList<>();
    private final int[] missing;
    private final boolean[] emitted;
    /** The group of each operation, -1 for an operation outside groups. */
    private final int[] group;
    /** Each group's operations: a point-to-point group's WRITE and then its READs; a collective's members. */
    private final List<List<Integer>> groupOps = new ArrayList<>();
    private final List<List<Operation>> out = new ArrayList<>();

    private NcclScheduler(List<ActorSchedule> schedules, List<ChannelSpec> channels, boolean overlap) {
        this.schedules = schedules;
        this.channels = channels;
        this.overlap = overlap;
        this.offset = new int[schedules.size() + 1];
        for (int a = 0; a < schedules.size(); a++) {
            offset[a + 1] = offset[a] + schedules.get(a).ops().size();
            out.add(new ArrayList<>());
        }
        this.size = offset[schedules.size()];
        this.missing = new int[size];
        this.emitted = new boolean[size];
        this.group = new int[size];
        Arrays.fill(group, -1);
        for (int i = 0; i < size; i++) {
            successors.add(new ArrayList<>());
        }
        buildGraph();
    }

    /**
     * Reorders the schedules of a plan with NCCL channels or all-reduces; other plans keep their bind order.
     *
     * @param schedules the actors' schedules in bind order
     * @param channels  the resolved channels
     * @param overlap   {@link CompileOptions#overlapGpuCommunication()}
     * @return the schedules, reordered if some channel is NCCL or some operation an all-reduce
     */
    static List<ActorSchedule> order(List<ActorSchedule> schedules, List<ChannelSpec> channels, boolean overlap) {
        if (channels.stream().noneMatch(c -> c.transport() == Transport.NCCL) && schedules.stream()
                .noneMatch(s -> s.ops().stream().anyMatch(op -> op instanceof AllReduce))) {
            return schedules;
        }
        return new NcclScheduler(schedules, channels, overlap).sort();
    }

    /**
     * The communicators of a plan: communicator 0 for point-to-point traffic when some channel is NCCL (its ranks
     * are the actors that write or read one, in schedule order), then for each collective in order the communicator
     * whose rank set equals its member set, or a new one whose ranks are its members in member order.
     *
     * @param schedules   the schedules
     * @param channels    the resolved channels
     * @param collectives each collective's members, in member order, by collective id
     * @return the communicators, by id
     */
    static List<CommunicatorSpec> communicators(List<ActorSchedule> schedules, List<ChannelSpec> channels,
                                                List<List<Integer>> collectives) {
        List<CommunicatorSpec> communicators = new ArrayList<>();
        List<Integer> pointToPoint = pointToPointRanks(schedules, channels);
        if (!pointToPoint.isEmpty()) {
            communicators.add(new CommunicatorSpec(0, pointToPoint));
        }
        for (List<Integer> members : collectives) {
            if (communicatorOf(communicators, members) < 0) {
                communicators.add(new CommunicatorSpec(communicators.size(), members));
            }
        }
        return communicators;
    }

    /**
     * @param communicators the communicators
     * @param members       a collective's members
     * @return the id of the first communicator whose rank set equals the member set, or -1
     */
    static int communicatorOf(List<CommunicatorSpec> communicators, List<Integer> members) {
        Set<Integer> set = Set.copyOf(members);
        for (CommunicatorSpec c : communicators) {
            if (Set.copyOf(c.ranks()).equals(set)) {
                return c.id();
            }
        }
        return -1;
    }

    /**
     * The NCCL schedule of ordered schedules of a plan without collectives.
     *
     * @param schedules the schedules as {@link #order} returned them
     * @param channels  the resolved channels
     * @return the schedule, {@link NcclSchedule#NONE} without NCCL channels
     */
    static NcclSchedule schedule(List<ActorSchedule> schedules, List<ChannelSpec> channels) {
        return schedule(schedules, channels, List.of(), communicators(schedules, channels, List.of()));
    }

    /**
     * The NCCL schedule of ordered schedules: ranks are the actors that write or read an NCCL channel (communicator
     * 0's ranks, in its order), then the actors that take part only in collectives, in schedule order; each NCCL
     * WRITE is a group of one send per reader, each NCCL READ a receive, each ALLREDUCE a group of one
     * {@link CommOp.Kind#ALL_REDUCE} with the member's rank in its collective's communicator.
     *
     * @param schedules     the schedules as {@link #order} returned them
     * @param channels      the resolved channels
     * @param collectives   the collectives
     * @param communicators the communicators, as {@link #communicators} returned them
     * @return the schedule, {@link NcclSchedule#NONE} without NCCL channels and collectives
     */
    static NcclSchedule schedule(List<ActorSchedule> schedules, List<ChannelSpec> channels,
                                 List<CollectiveSpec> collectives, List<CommunicatorSpec> communicators) {
        List<Integer> ranks = new ArrayList<>(pointToPointRanks(schedules, channels));
        for (ActorSchedule s : schedules) {
            if (!ranks.contains(s.actor()) && s.ops().stream().anyMatch(op -> op instanceof AllReduce)) {
                ranks.add(s.actor());
            }
        }
        if (ranks.isEmpty()) {
            return NcclSchedule.NONE;
        }
        List<List<CommGroup>> groups = new ArrayList<>();
        for (int actor : ranks) {
            ActorSchedule s = schedules.stream().filter(x -> x.actor() == actor).findFirst().orElseThrow();
            List<CommGroup> mine = new ArrayList<>();
            for (Operation op : s.ops()) {
                if (op instanceof Write w && channels.get(w.channel()).transport() == Transport.NCCL) {
                    mine.add(new CommGroup(channels.get(w.channel()).readers().stream()
                            .map(r -> new CommOp(CommOp.Kind.SEND, w.channel(), ranks.indexOf(r))).toList()));
                } else if (op instanceof Read r && channels.get(r.channel()).transport() == Transport.NCCL) {
                    mine.add(new CommGroup(List.of(new CommOp(CommOp.Kind.RECV, r.channel(),
                            ranks.indexOf(channels.get(r.channel()).writer())))));
                } else if (op instanceof AllReduce r) {
                    CommunicatorSpec comm = communicators.get(collectives.get(r.collective()).communicator());
                    mine.add(new CommGroup(List.of(new CommOp(CommOp.Kind.ALL_REDUCE, r.collective(),
                            comm.rankOf(actor)))));
                }
            }
            groups.add(mine);
        }
        return new NcclSchedule(ranks, groups);
    }

    /** @return the actors that write or read an NCCL channel, in schedule order */
    private static List<Integer> pointToPointRanks(List<ActorSchedule> schedules, List<ChannelSpec> channels) {
        List<Integer> ranks = new ArrayList<>();
        for (ActorSchedule s : schedules) {
            for (ChannelSpec c : channels) {
                if (c.transport() == Transport.NCCL && (c.writer() == s.actor() || c.readers().contains(s.actor()))) {
                    ranks.add(s.actor());
                    break;
                }
            }
        }
        return ranks;
    }

    private int id(int actor, int index) {
        return offset[actor] + index;
    }

    private int actorOf(int id) {
        int a = 0;
        while (offset[a + 1] <= id) {
            a++;
        }
        return a;
    }

    private Operation op(int id) {
        int a = actorOf(id);
        return schedules.get(a).ops().get(id - offset[a]);
    }

    private void edge(int from, int to) {
        successors.get(from).add(to);
        missing[to]++;
    }

    private void join(int id, Map<Integer, Integer> groups, int key) {
        int g = groups.computeIfAbsent(key, k -> {
            groupOps.add(new ArrayList<>());
            return groupOps.size() - 1;
        });
        group[id] = g;
        groupOps.get(g).add(id);
    }

    /**
     * Relies on how the compiler lays out a schedule: the READs right before a COMPUTE are the ones that
     * call needs first, and a WRITE follows the operation that fills its local.
     */
    private void buildGraph() {
        int[] writeOf = new int[channels.size()];
        Arrays.fill(writeOf, -1);
        Map<Integer, Integer> collectiveGroups = new HashMap<>();
        for (int a = 0; a < schedules.size(); a++) {
            List<Operation> ops = schedules.get(a).ops();
            Map<Integer, Integer> filledBy = new HashMap<>();
            int lastCompute = -1;
            for (int i = 0; i < ops.size(); i++) {
                switch (ops.get(i)) {
                    case Compute c -> {
                        // The previous COMPUTE and everything after it (its WRITE, all-reduces, the READs laid out
                        // for this call) come first.
                        for (int j = Math.max(lastCompute, 0); j < i; j++) {
                            edge(id(a, j), id(a, i));
                        }
                        lastCompute = i;
                        filledBy.put(c.local(), i);
                    }
                    case AllReduce r -> {
                        edge(id(a, filledBy.get(r.inputLocal())), id(a, i));
                        filledBy.put(r.local(), i);
                        join(id(a, i), collectiveGroups, r.collective());
                    }
                    case Write w -> {
                        edge(id(a, filledBy.get(w.local())), id(a, i));
                        writeOf[w.channel()] = id(a, i);
                    }
                    case Read r -> filledBy.put(r.local(), i);
                }
            }
        }
        Map<Integer, Integer> channelGroups = new HashMap<>();
        for (int a = 0; a < schedules.size(); a++) {
            List<Operation> ops = schedules.get(a).ops();
            for (int i = 0; i < ops.size(); i++) {
                if (ops.get(i) instanceof Read r && writeOf[r.channel()] >= 0) {
                    int write = writeOf[r.channel()];
                    if (channels.get(r.channel()).transport() == Transport.NCCL) {
                        if (group[write] < 0) {
                            join(write, channelGroups, r.channel());
                        }
                        join(id(a, i), channelGroups, r.channel());
                    } else {
                        edge(write, id(a, i));
                    }
                }
            }
        }
    }

    private boolean ready(int id) {
        return !emitted[id] && missing[id] == 0;
    }

    /** @return the lowest-indexed operation of an actor not yet emitted, or -1 */
    private int front(int actor) {
        for (int i = offset[actor]; i < offset[actor + 1]; i++) {
            if (!emitted[i]) {
                return i;
            }
        }
        return -1;
    }

    private void emit(int id) {
        emitted[id] = true;
        out.get(actorOf(id)).add(op(id));
        for (int s : successors.get(id)) {
            missing[s]--;
        }
    }

    private int emitGroup(int g) {
        for (int id : groupOps.get(g)) {
            emit(id);
        }
        return groupOps.get(g).size();
    }

    /** Every member is ready; in bind order, every member is also next on its actor. */
    private boolean releasable(int g, boolean inBindOrder) {
        for (int id : groupOps.get(g)) {
            if (!ready(id) || inBindOrder && front(actorOf(id)) != id) {
                return false;
            }
        }
        return true;
    }

    private List<ActorSchedule> sort() {
        int done = 0;
        while (done < size) {
            int before = done;
            for (int a = 0; a < schedules.size(); a++) {
                for (int next = front(a); next >= 0; next = front(a)) {
                    int g = group[next];
                    if (g < 0 && ready(next)) {
                        emit(next);
                        done++;
                    } else if (g >= 0 && releasable(g, !overlap)) {
                        done += emitGroup(g);
                    } else {
                        break;
                    }
                }
            }
            if (done == before) {
                done += outOfOrder();
            }
        }
        List<ActorSchedule> ordered = new ArrayList<>();
        for (int a = 0; a < schedules.size(); a++) {
            ActorSchedule s = schedules.get(a);
            ordered.add(new ActorSchedule(s.actor(), s.name(), s.placement(), s.frameSize(), out.get(a), s.carrier()));
        }
        return ordered;
    }

    /**
     * Every actor waits at its next operation: the bind orders wait on each other. The first ready group (by actor,
     * then index, of its WRITE or first member) goes out of bind order; failing that, the first ready operation.
     */
    private int outOfOrder() {
        for (int id = 0; id < size; id++) {
            int g = group[id];
            if (g >= 0 && groupOps.get(g).getFirst() == id && releasable(g, false)) {
                return emitGroup(g);
            }
        }
        for (int id = 0; id < size; id++) {
            if (group[id] < 0 && ready(id)) {
                emit(id);
                return 1;
            }
        }
        throw new IllegalStateException("no operation can be scheduled: the plan's operations form a cycle");
    }
}
