package dev.kiln.compiler;

import dev.kiln.compiler.ExecutionPlan.ActorSchedule;
import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.compiler.ExecutionPlan.CommGroup;
import dev.kiln.compiler.ExecutionPlan.CommOp;
import dev.kiln.compiler.ExecutionPlan.Compute;
import dev.kiln.compiler.ExecutionPlan.NcclSchedule;
import dev.kiln.compiler.ExecutionPlan.Operation;
import dev.kiln.compiler.ExecutionPlan.Read;
import dev.kiln.compiler.ExecutionPlan.Write;
import dev.kiln.graph.Transport;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Orders the operations of a plan that has NCCL channels so that NCCL sends and receives cannot
 * deadlock, and derives each rank's groups.
 *
 * <p>An NCCL send blocks until its receiver posts the matching receive (and a receive until its
 * send), so the actors' bind-order schedules may deadlock: actor A sends x to B and then y to C,
 * while B first receives z from C, which first receives y from A. Like Ray's compiled graphs, the
 * operations of one execution form a graph (on each actor: a READ before the COMPUTE it was laid
 * out for, COMPUTEs in bind order, a WRITE after its COMPUTE; across actors: a WRITE before the READs
 * of its channel), in which an NCCL WRITE and all the READs of its channel form one group. A
 * topological sort appends a group to all its members' schedules in one step, so every rank's NCCL
 * operations are the projection of one global order: for any pair of ranks the sends of one match the
 * receives of the other in order, and the schedules complete (the earliest unfinished group always
 * has all its members waiting at it).
 *
 * <p>Without {@code overlapGpuCommunication}, each actor keeps its bind order where it can: an
 * operation is appended when it is its actor's next operation in bind order, a group when it is so
 * for every member; only when every actor waits that way is the first ready group (by actor, then
 * index) released out of bind order, which is what breaks the cycle above. With it, a group is
 * released as soon as its WRITE is ready, so receives move ahead of the reader's earlier computes.
 * Plans without NCCL channels keep their bind order: there a WRITE never waits for a reader within an
 * execution. Pure.
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
    /** For an operation of an NCCL group, the id of the group's WRITE; -1 for other operations. */
    private final int[] groupWrite;
    /** For the WRITE of an NCCL group, the ids of its READs. */
    private final List<List<Integer>> groupReads = new ArrayList<>();
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
        this.groupWrite = new int[size];
        Arrays.fill(groupWrite, -1);
        for (int i = 0; i < size; i++) {
            successors.add(new ArrayList<>());
            groupReads.add(new ArrayList<>());
        }
        buildGraph();
    }

    /**
     * Reorders the schedules of a plan with NCCL channels; plans without keep their bind order.
     *
     * @param schedules the actors' schedules in bind order
     * @param channels  the resolved channels
     * @param overlap   {@link CompileOptions#overlapGpuCommunication()}
     * @return the schedules, reordered if some channel is NCCL
     */
    static List<ActorSchedule> order(List<ActorSchedule> schedules, List<ChannelSpec> channels, boolean overlap) {
        if (channels.stream().noneMatch(c -> c.transport() == Transport.NCCL)) {
            return schedules;
        }
        return new NcclScheduler(schedules, channels, overlap).sort();
    }

    /**
     * The NCCL schedule of ordered schedules: ranks are the actors that write or read an NCCL channel,
     * in schedule order; each NCCL WRITE is a group of one send per reader, each NCCL READ a receive.
     *
     * @param schedules the schedules as {@link #order} returned them
     * @param channels  the resolved channels
     * @return the schedule, {@link NcclSchedule#NONE} without NCCL channels
     */
    static NcclSchedule schedule(List<ActorSchedule> schedules, List<ChannelSpec> channels) {
        List<Integer> ranks = new ArrayList<>();
        for (ActorSchedule s : schedules) {
            for (ChannelSpec c : channels) {
                if (c.transport() == Transport.NCCL && (c.writer() == s.actor() || c.readers().contains(s.actor()))) {
                    ranks.add(s.actor());
                    break;
                }
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
                }
            }
            groups.add(mine);
        }
        return new NcclSchedule(ranks, groups);
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

    /**
     * Relies on how the compiler lays out a schedule: the READs right before a COMPUTE are the ones that
     * call needs first, and its WRITE follows it.
     */
    private void buildGraph() {
        int[] writeOf = new int[channels.size()];
        Arrays.fill(writeOf, -1);
        for (int a = 0; a < schedules.size(); a++) {
            List<Operation> ops = schedules.get(a).ops();
            int lastCompute = -1;
            for (int i = 0; i < ops.size(); i++) {
                Operation op = ops.get(i);
                if (op instanceof Compute) {
                    // The previous COMPUTE, its WRITE, and the READs laid out for this call come first.
                    for (int j = Math.max(lastCompute, 0); j < i; j++) {
                        edge(id(a, j), id(a, i));
                    }
                    lastCompute = i;
                } else if (op instanceof Write w) {
                    edge(id(a, lastCompute), id(a, i));
                    writeOf[w.channel()] = id(a, i);
                }
            }
        }
        for (int a = 0; a < schedules.size(); a++) {
            List<Operation> ops = schedules.get(a).ops();
            for (int i = 0; i < ops.size(); i++) {
                if (ops.get(i) instanceof Read r && writeOf[r.channel()] >= 0) {
                    int write = writeOf[r.channel()];
                    if (channels.get(r.channel()).transport() == Transport.NCCL) {
                        groupWrite[write] = write;
                        groupWrite[id(a, i)] = write;
                        groupReads.get(write).add(id(a, i));
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

    private int emitGroup(int write) {
        emit(write);
        for (int read : groupReads.get(write)) {
            emit(read);
        }
        return 1 + groupReads.get(write).size();
    }

    /** Its READs wait for nothing but the WRITE; in bind order, every member must also be next on its actor. */
    private boolean releasable(int write, boolean inBindOrder) {
        if (!ready(write)) {
            return false;
        }
        if (!inBindOrder) {
            return true;
        }
        if (front(actorOf(write)) != write) {
            return false;
        }
        for (int read : groupReads.get(write)) {
            if (front(actorOf(read)) != read) {
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
                    int write = groupWrite[next];
                    if (write < 0 && ready(next)) {
                        emit(next);
                        done++;
                    } else if (write >= 0 && releasable(write, !overlap)) {
                        done += emitGroup(write);
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
            ordered.add(new ActorSchedule(s.actor(), s.name(), s.placement(), s.frameSize(), out.get(a)));
        }
        return ordered;
    }

    /**
     * Every actor waits at its next operation: the bind orders wait on each other. The first ready group
     * (by actor, then index) goes out of bind order; failing that, the first ready operation.
     */
    private int outOfOrder() {
        for (int id = 0; id < size; id++) {
            if (groupWrite[id] == id && releasable(id, false)) {
                return emitGroup(id);
            }
        }
        for (int id = 0; id < size; id++) {
            if (groupWrite[id] < 0 && ready(id)) {
                emit(id);
                return 1;
            }
        }
        throw new IllegalStateException("no operation can be scheduled: the plan's operations form a cycle");
    }
}
