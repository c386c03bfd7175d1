package dev.kiln.compiler;

import dev.kiln.compiler.ExecutionPlan.ActorSchedule;
import dev.kiln.compiler.ExecutionPlan.AllReduce;
import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.compiler.ExecutionPlan.CollectiveSpec;
import dev.kiln.compiler.ExecutionPlan.CommGroup;
import dev.kiln.compiler.ExecutionPlan.CommOp;
import dev.kiln.compiler.ExecutionPlan.Compute;
import dev.kiln.compiler.ExecutionPlan.NcclSchedule;
import dev.kiln.compiler.ExecutionPlan.Operation;
import dev.kiln.compiler.ExecutionPlan.OutputRead;
import dev.kiln.compiler.ExecutionPlan.Read;
import dev.kiln.compiler.ExecutionPlan.Write;
import dev.kiln.graph.Transport;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * Proves that schedules complete, by simulating them: no threads, no channels, a pure function of the
 * plan. Used by tests, and usable by an executor before it runs a plan it did not compile.
 *
 * <p>The simulated semantics are NCCL's, made blocking: a rank that reaches a group posts all its
 * operations at once and waits until every one of them is matched; the k-th send from rank a to rank b
 * matches the k-th receive of b from a (point-to-point operations of a pair match in issue order), and
 * both must be for the same channel. A collective step ({@link CommOp.Kind#ALL_REDUCE}) completes when
 * every member of its collective has reached it; the collectives of one communicator match in issue order,
 * so its ranks must issue them in one order (the j-th collective each rank issues on it is the same one).
 * An ungrouped send therefore blocks until its receive is posted, a collective until its last member
 * arrives, and a wrong order deadlocks, which the simulation reports with every participant's position. For a whole
 * plan it also simulates the other channels: a WRITE waits for a free slot (every reader released the
 * value {@code slots} executions back; readers release when they finish an execution), a READ waits for
 * the value, the driver submits executions and reads the outputs.
 */
public final class ScheduleChecker {

    private ScheduleChecker() {
    }

    /**
     * Checks that for every ordered pair of ranks (a, b), the channels a sends to b, in a's order,
     * are the channels b receives from a, in b's order. Collective steps are not point-to-point and are
     * ignored here; the simulations check their order.
     *
     * @param schedule an NCCL schedule
     * @throws IllegalStateException naming the pair and the first difference
     */
    public static void checkPairOrder(NcclSchedule schedule) {
        int n = schedule.size();
        for (int a = 0; a < n; a++) {
            for (int b = 0; b < n; b++) {
                List<Integer> sent = channels(schedule.groups().get(a), CommOp.Kind.SEND, b);
                List<Integer> received = channels(schedule.groups().get(b), CommOp.Kind.RECV, a);
                if (!sent.equals(received)) {
                    throw new IllegalStateException("rank " + a + " sends channels " + sent + " to rank " + b
                            + ", which receives channels " + received + " from it: a pair of ranks must issue matching "
                            + "sends and receives in the same order");
                }
            }
        }
    }

    private static List<Integer> channels(List<CommGroup> groups, CommOp.Kind kind, int peer) {
        List<Integer> found = new ArrayList<>();
        for (CommGroup g : groups) {
            for (CommOp op : g.ops()) {
                if (op.kind() == kind && op.peer() == peer) {
                    found.add(op.channel());
                }
            }
        }
        return found;
    }

    /**
     * Runs each rank's groups, {@code executions} times over, with blocking semantics. The members of collective
     * k are the ranks whose groups hold an {@code ALL_REDUCE} of k; collectives with equal member sets share a
     * communicator (the compiler's rule).
     *
     * @param schedule   an NCCL schedule
     * @param executions how many executions to run, >= 1
     * @return the NCCL operations that completed: matched send/receive pairs plus collective steps (one per
     *         collective per execution)
     * @throws IllegalStateException on a deadlock (every unfinished rank and the group it waits in), on a send
     *                               matched with a receive of another channel, or on ranks of one communicator
     *                               issuing its collectives in different orders
     */
    public static long simulate(NcclSchedule schedule, int executions) {
        Sim sim = new Sim(executions, new int[0]);
        sim.collectivesOf(schedule, null);
        for (int r = 0; r < schedule.size(); r++) {
            List<Step> steps = new ArrayList<>();
            for (CommGroup g : schedule.groups().get(r)) {
                steps.add(new Comm(r, g));
            }
            sim.add("rank " + r, steps);
        }
        return sim.run();
    }

    /**
     * Runs a whole plan, {@code executions} times over: each actor's schedule in order, the driver's writes of
     * the input and reads of the outputs, every channel with its slots, NCCL channels through the plan's
     * {@link NcclSchedule} with blocking semantics, all-reduces on their communicators. Also checks that the NCCL
     * schedule is the one the actor schedules imply (each NCCL WRITE or READ and each ALLREDUCE of an actor is its
     * rank's next group), that each collective's steps are issued by exactly its members, and the pair order.
     *
     * @param plan       a plan
     * @param executions how many executions to run, >= 1
     * @return the NCCL operations that completed: matched send/receive pairs plus collective steps (one per
     *         collective per execution)
     * @throws IllegalStateException on a deadlock (every unfinished participant and what it waits for), when
     *                               the NCCL schedule disagrees with the actor schedules or the collectives, or
     *                               when ranks of one communicator issue its collectives in different orders
     */
    public static long simulate(ExecutionPlan plan, int executions) {
        NcclSchedule nccl = plan.nccl();
        checkPairOrder(nccl);
        int[] slots = plan.channels().stream().mapToInt(ChannelSpec::slots).toArray();
        Sim sim = new Sim(executions, slots);
        sim.collectivesOf(nccl, plan);
        for (ChannelSpec c : plan.channels()) {
            sim.readers[c.id()] = c.readers().size();
            sim.released[c.id()] = new long[c.readers().size()];
        }
        sim.add("driver (input)", List.of(new ChannelWrite(ExecutionPlan.INPUT_CHANNEL)));
        for (ActorSchedule s : plan.schedules()) {
            sim.add(s.name(), steps(plan, s));
        }
        Set<Integer> outputs = new LinkedHashSet<>();
        List<Step> results = new ArrayList<>();
        for (OutputRead o : plan.outputs()) {
            if (outputs.add(o.channel())) {
                results.add(new ChannelRead(o.channel(), o.reader()));
            }
        }
        sim.add("driver (results)", results);
        return sim.run();
    }

    private static List<Step> steps(ExecutionPlan plan, ActorSchedule s) {
        NcclSchedule nccl = plan.nccl();
        int rank = nccl.rankOf(s.actor());
        List<CommGroup> groups = rank < 0 ? List.of() : nccl.groups().get(rank);
        List<Step> steps = new ArrayList<>();
        int next = 0;
        for (Operation op : s.ops()) {
            int channel = switch (op) {
                case Read r -> r.channel();
                case Write w -> w.channel();
                case Compute _, AllReduce _ -> -1;
            };
            ChannelSpec spec = channel < 0 ? null : plan.channels().get(channel);
            if (op instanceof AllReduce r) {
                if (next >= groups.size()) {
                    throw new IllegalStateException("actor " + s.name() + " has more NCCL operations than its rank's "
                            + groups.size() + " groups" + (rank < 0 ? " (it has no rank)" : ""));
                }
                CommGroup group = groups.get(next++);
                if (r.collective() < 0 || r.collective() >= plan.collectives().size()) {
                    throw new IllegalStateException("actor " + s.name() + " takes part in allreduce#" + r.collective()
                            + ", which the plan does not have");
                }
                CollectiveSpec c = plan.collectives().get(r.collective());
                CommGroup expected = new CommGroup(List.of(new CommOp(CommOp.Kind.ALL_REDUCE, r.collective(),
                        plan.communicators().get(c.communicator()).rankOf(s.actor()))));
                if (!group.equals(expected)) {
                    throw new IllegalStateException("actor " + s.name() + "'s NCCL operation " + next + " (ALLREDUCE #"
                            + r.collective() + ") needs " + expected + " but rank " + rank + "'s group " + next + " is "
                            + group);
                }
                steps.add(new Comm(rank, group));
            } else if (spec == null) {
                steps.add(new Local());
            } else if (spec.transport() != Transport.NCCL) {
                steps.add(op instanceof Read r ? new ChannelRead(channel, r.reader()) : new ChannelWrite(channel));
            } else {
                if (next >= groups.size()) {
                    throw new IllegalStateException("actor " + s.name() + " has more NCCL operations than its rank's "
                            + groups.size() + " groups" + (rank < 0 ? " (it has no rank)" : ""));
                }
                CommGroup group = groups.get(next++);
                List<CommOp> expected = new ArrayList<>();
                if (op instanceof Write) {
                    for (int reader : spec.readers()) {
                        expected.add(new CommOp(CommOp.Kind.SEND, channel, nccl.rankOf(reader)));
                    }
                } else {
                    expected.add(new CommOp(CommOp.Kind.RECV, channel, nccl.rankOf(spec.writer())));
                }
                if (!new LinkedHashSet<>(group.ops()).equals(new LinkedHashSet<>(expected))
                        || group.ops().size() != expected.size()) {
                    throw new IllegalStateException("actor " + s.name() + "'s NCCL operation " + next + " ("
                            + (op instanceof Write ? "WRITE" : "READ") + " c" + channel + ") needs " + expected
                            + " but rank " + rank + "'s group " + next + " is " + group);
                }
                steps.add(new Comm(rank, group));
            }
        }
        if (next != groups.size()) {
            throw new IllegalStateException("rank " + rank + " (" + s.name() + ") has " + groups.size()
                    + " NCCL groups but its schedule has " + next + " NCCL operations");
        }
        return steps;
    }

    /** One step of a simulated participant. */
    private sealed interface Step permits Local, ChannelRead, ChannelWrite, Comm {
    }

    private record Local() implements Step {
    }

    private record ChannelRead(int channel, int reader) implements Step {
    }

    private record ChannelWrite(int channel) implements Step {
    }

    private record Comm(int rank, CommGroup group) implements Step {
    }

    /** One ordered pair of ranks: the channels of the sends and of the receives posted so far. */
    private static final class Pair {
        final List<Integer> sends = new ArrayList<>();
        final List<Integer> recvs = new ArrayList<>();
    }

    /** A posted operation: its pair, which side, its index on that side. */
    private record Posted(Pair pair, boolean send, int index, int from, int to) {
    }

    /**
     * The collectives of one communicator: each member rank's collective ids in issue order, and how many steps
     * have completed (on every member).
     */
    private static final class CommState {
        final Map<Integer, List<Integer>> issued = new TreeMap<>();
        int completed;

        CommState(Set<Integer> members) {
            members.forEach(m -> issued.put(m, new ArrayList<>()));
        }
    }

    /** A posted collective step: its communicator, the posting rank, its index in that rank's issue order. */
    private record PostedCollective(CommState comm, int rank, int index) {
    }

    private static final class Sim {
        final int executions;
        final int[] slots;
        final long[] published;
        final int[] readers;
        final long[][] released;
        final List<String> names = new ArrayList<>();
        final List<List<Step>> steps = new ArrayList<>();
        final List<Integer> iteration = new ArrayList<>();
        final List<Integer> pc = new ArrayList<>();
        final List<List<Posted>> posted = new ArrayList<>();
        final List<List<PostedCollective>> postedCollectives = new ArrayList<>();
        final Map<Long, Pair> pairs = new HashMap<>();
        /** The communicator state of each collective id. */
        final Map<Integer, CommState> comms = new HashMap<>();
        long transfers;
        long collectives;

        Sim(int executions, int[] slots) {
            if (executions < 1) {
                throw new IllegalArgumentException("executions must be >= 1, got " + executions);
            }
            this.executions = executions;
            this.slots = slots;
            this.published = new long[slots.length];
            this.readers = new int[slots.length];
            this.released = new long[slots.length][];
        }

        void add(String name, List<Step> participantSteps) {
            names.add(name);
            steps.add(participantSteps);
            iteration.add(0);
            pc.add(0);
            posted.add(null);
            postedCollectives.add(null);
        }

        /**
         * Finds each collective's members (the ranks that issue it) and communicator: the plan's, or without a plan
         * one per distinct member set.
         *
         * @throws IllegalStateException if the members disagree with the plan's collective
         */
        void collectivesOf(NcclSchedule schedule, ExecutionPlan plan) {
            Map<Integer, Set<Integer>> members = new TreeMap<>();
            for (int r = 0; r < schedule.size(); r++) {
                for (CommGroup g : schedule.groups().get(r)) {
                    for (CommOp op : g.ops()) {
                        if (op.kind() == CommOp.Kind.ALL_REDUCE) {
                            members.computeIfAbsent(op.channel(), k -> new TreeSet<>()).add(r);
                        }
                    }
                }
            }
            Map<Object, CommState> byKey = new HashMap<>();
            for (var e : members.entrySet()) {
                Object key = e.getValue();
                if (plan != null) {
                    if (e.getKey() < 0 || e.getKey() >= plan.collectives().size()) {
                        throw new IllegalStateException("the NCCL schedule issues allreduce#" + e.getKey()
                                + ", which the plan does not have");
                    }
                    CollectiveSpec c = plan.collectives().get(e.getKey());
                    Set<Integer> expected = new TreeSet<>();
                    c.members().forEach(m -> expected.add(schedule.rankOf(m)));
                    if (!expected.equals(e.getValue())) {
                        throw new IllegalStateException("allreduce#" + e.getKey() + " is issued by ranks " + e.getValue()
                                + ", but its members are ranks " + expected);
                    }
                    key = c.communicator();
                }
                Set<Integer> set = e.getValue();
                comms.put(e.getKey(), byKey.computeIfAbsent(key, k -> new CommState(set)));
            }
        }

        long run() {
            while (true) {
                boolean progress = false;
                boolean finished = true;
                for (int p = 0; p < names.size(); p++) {
                    progress |= advance(p);
                    finished &= iteration.get(p) == executions;
                }
                if (finished) {
                    return transfers + collectives;
                }
                if (!progress) {
                    throw new IllegalStateException(deadlock());
                }
            }
        }

        /** Runs participant {@code p} as far as it goes; says whether it moved. */
        private boolean advance(int p) {
            boolean moved = false;
            while (iteration.get(p) < executions) {
                List<Step> mine = steps.get(p);
                if (pc.get(p) == mine.size()) {
                    for (Step s : mine) {
                        if (s instanceof ChannelRead r) {
                            released[r.channel][r.reader] = iteration.get(p) + 1;
                        }
                    }
                    iteration.set(p, iteration.get(p) + 1);
                    pc.set(p, 0);
                    moved = true;
                    continue;
                }
                Step step = mine.get(pc.get(p));
                boolean wasPosted = posted.get(p) != null;
                if (!take(p, step)) {
                    return moved || (!wasPosted && posted.get(p) != null);
                }
                pc.set(p, pc.get(p) + 1);
                moved = true;
            }
            return moved;
        }

        private boolean take(int p, Step step) {
            long n = iteration.get(p);
            return switch (step) {
                case Local _ -> true;
                case ChannelRead r -> published[r.channel] > n;
                case ChannelWrite w -> {
                    long oldest = Long.MAX_VALUE;
                    for (long r : released[w.channel]) {
                        oldest = Math.min(oldest, r);
                    }
                    if (readers[w.channel] > 0 && published[w.channel] - oldest >= slots[w.channel]) {
                        yield false;
                    }
                    published[w.channel]++;
                    yield true;
                }
                case Comm c -> communicate(p, c);
            };
        }

        private boolean communicate(int p, Comm c) {
            if (posted.get(p) == null) {
                List<Posted> mine = new ArrayList<>();
                List<PostedCollective> steps = new ArrayList<>();
                for (CommOp op : c.group.ops()) {
                    if (op.kind() == CommOp.Kind.ALL_REDUCE) {
                        CommState comm = comms.get(op.channel());
                        List<Integer> issued = comm.issued.get(c.rank);
                        issued.add(op.channel());
                        steps.add(new PostedCollective(comm, c.rank, issued.size() - 1));
                        continue;
                    }
                    boolean send = op.kind() == CommOp.Kind.SEND;
                    int from = send ? c.rank : op.peer();
                    int to = send ? op.peer() : c.rank;
                    Pair pair = pairs.computeIfAbsent(((long) from << 32) | to, k -> new Pair());
                    List<Integer> side = send ? pair.sends : pair.recvs;
                    side.add(op.channel());
                    mine.add(new Posted(pair, send, side.size() - 1, from, to));
                }
                posted.set(p, mine);
                postedCollectives.set(p, steps);
            }
            for (PostedCollective step : postedCollectives.get(p)) {
                int mine = step.comm.issued.get(step.rank).get(step.index);
                for (var member : step.comm.issued.entrySet()) {
                    if (member.getValue().size() <= step.index) {
                        return false;
                    }
                    int theirs = member.getValue().get(step.index);
                    if (theirs != mine) {
                        throw new IllegalStateException("rank " + step.rank + "'s collective " + step.index + " on its "
                                + "communicator is allreduce#" + mine + ", but rank " + member.getKey() + "'s is "
                                + "allreduce#" + theirs + ": the ranks of a communicator must issue its collectives in "
                                + "the same order");
                    }
                }
            }
            for (Posted op : posted.get(p)) {
                List<Integer> other = op.send ? op.pair.recvs : op.pair.sends;
                if (other.size() <= op.index) {
                    return false;
                }
                int sent = op.pair.sends.get(op.index);
                int received = op.pair.recvs.get(op.index);
                if (sent != received) {
                    throw new IllegalStateException("rank " + op.from + "'s send " + op.index + " to rank " + op.to
                            + " carries c" + sent + ", but rank " + op.to + "'s receive " + op.index + " from rank "
                            + op.from + " is for c" + received + ": the pair issues its operations in different orders");
                }
            }
            for (Posted op : posted.get(p)) {
                if (op.send) {
                    transfers++;
                }
            }
            for (PostedCollective step : postedCollectives.get(p)) {
                if (step.index >= step.comm.completed) {
                    step.comm.completed = step.index + 1;
                    collectives++;
                }
            }
            posted.set(p, null);
            postedCollectives.set(p, null);
            return true;
        }

        private String deadlock() {
            List<String> waiting = new ArrayList<>();
            for (int p = 0; p < names.size(); p++) {
                if (iteration.get(p) < executions) {
                    Step s = steps.get(p).get(pc.get(p));
                    String what = switch (s) {
                        case Local _ -> "COMPUTE";
                        case ChannelRead r -> "READ c" + r.channel;
                        case ChannelWrite w -> "WRITE c" + w.channel + " (no free slot)";
                        case Comm c -> "r" + c.rank + " " + c.group + (posted.get(p) != null ? " (posted)" : "");
                    };
                    waiting.add(names.get(p) + " at execution " + iteration.get(p) + " waits in " + what);
                }
            }
            return "deadlock after " + transfers + (transfers == 1 ? " transfer" : " transfers")
                    + (comms.isEmpty() ? "" : " and " + collectives + (collectives == 1 ? " collective" : " collectives"))
                    + ": " + String.join("; ", waiting);
        }
    }
}
