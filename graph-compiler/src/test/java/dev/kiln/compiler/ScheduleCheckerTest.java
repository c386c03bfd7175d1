package dev.kiln.compiler;

import dev.kiln.compiler.ExecutionPlan.CommGroup;
import dev.kiln.compiler.ExecutionPlan.CommOp;
import dev.kiln.compiler.ExecutionPlan.NcclSchedule;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import dev.kiln.compiler.GpuActors.Gpu;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;
import dev.kiln.tensor.DeviceTensor;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** The checker on hand-written schedules: what must complete, what must deadlock, what must be refused. */
@Timeout(30)
class ScheduleCheckerTest {

    private static CommOp send(int channel, int peer) {
        return new CommOp(CommOp.Kind.SEND, channel, peer);
    }

    private static CommOp recv(int channel, int peer) {
        return new CommOp(CommOp.Kind.RECV, channel, peer);
    }

    /** Collective {@code collective}'s step of a member whose rank in the collective's communicator is {@code rank}. */
    private static CommOp allReduce(int collective, int rank) {
        return new CommOp(CommOp.Kind.ALL_REDUCE, collective, rank);
    }

    private static CommGroup one(CommOp op) {
        return new CommGroup(List.of(op));
    }

    private static CommGroup group(CommOp... ops) {
        return new CommGroup(List.of(ops));
    }

    /** Ranks 0..n-1 played by actors 10, 11, ... */
    @SafeVarargs
    private static NcclSchedule schedule(List<CommGroup>... ranks) {
        List<Integer> actors = new ArrayList<>();
        List<List<CommGroup>> groups = new ArrayList<>();
        for (int r = 0; r < ranks.length; r++) {
            actors.add(10 + r);
            groups.add(ranks[r]);
        }
        return new NcclSchedule(actors, groups);
    }

    @Test
    void matchingPairCompletesEveryExecution() {
        NcclSchedule s = schedule(List.of(one(send(1, 1)), one(recv(2, 1))), List.of(one(recv(1, 0)), one(send(2, 0))));
        assertDoesNotThrow(() -> ScheduleChecker.checkPairOrder(s));
        assertEquals(2 * 5, ScheduleChecker.simulate(s, 5));
    }

    @Test
    void twoRanksThatBothSendFirstDeadlockUnlessGrouped() {
        NcclSchedule ungrouped = schedule(List.of(one(send(1, 1)), one(recv(2, 1))),
                List.of(one(send(2, 0)), one(recv(1, 0))));
        assertDoesNotThrow(() -> ScheduleChecker.checkPairOrder(ungrouped));
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> ScheduleChecker.simulate(ungrouped, 1));
        assertEquals("deadlock after 0 transfers: rank 0 at execution 0 waits in r0 SEND c1 -> r1 (posted); "
                + "rank 1 at execution 0 waits in r1 SEND c2 -> r0 (posted)", e.getMessage());

        NcclSchedule grouped = schedule(List.of(group(send(1, 1), recv(2, 1))), List.of(group(send(2, 0), recv(1, 0))));
        assertEquals(2 * 3, ScheduleChecker.simulate(grouped, 3));
    }

    @Test
    void sendingToItselfNeedsAGroup() {
        assertThrows(IllegalStateException.class,
                () -> ScheduleChecker.simulate(schedule(List.of(one(send(1, 0)), one(recv(1, 0)))), 1));
        assertEquals(4, ScheduleChecker.simulate(schedule(List.of(group(send(1, 0), recv(1, 0)))), 4));
    }

    @Test
    void threeRanksThatAgreePairwiseCanStillDeadlock() {
        // 0 sends to 1 then 2; 1 waits for 2 first; 2 waits for 0's second send before sending to 1.
        NcclSchedule s = schedule(List.of(one(send(1, 1)), one(send(2, 2))),
                List.of(one(recv(3, 2)), one(recv(1, 0))),
                List.of(one(recv(2, 0)), one(send(3, 1))));
        assertDoesNotThrow(() -> ScheduleChecker.checkPairOrder(s));
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> ScheduleChecker.simulate(s, 1));
        assertEquals("deadlock after 0 transfers: rank 0 at execution 0 waits in r0 SEND c1 -> r1 (posted); "
                + "rank 1 at execution 0 waits in r1 RECV c3 <- r2 (posted); rank 2 at execution 0 waits in r2 "
                + "RECV c2 <- r0 (posted)", e.getMessage());
    }

    @Test
    void aGroupMayMatchSeveralOfThePeersGroups() {
        // Point-to-point operations of a pair match in issue order, whatever the grouping on either side.
        NcclSchedule s = schedule(List.of(group(send(1, 1), send(2, 1))), List.of(one(recv(1, 0)), one(recv(2, 0))));
        assertEquals(2 * 2, ScheduleChecker.simulate(s, 2));
    }

    @Test
    void differentOrdersOfOnePairAreRefused() {
        NcclSchedule s = schedule(List.of(one(send(1, 1)), one(send(2, 1))), List.of(one(recv(2, 0)), one(recv(1, 0))));
        IllegalStateException order = assertThrows(IllegalStateException.class, () -> ScheduleChecker.checkPairOrder(s));
        assertEquals("rank 0 sends channels [1, 2] to rank 1, which receives channels [2, 1] from it: a pair of ranks "
                + "must issue matching sends and receives in the same order", order.getMessage());
        IllegalStateException run = assertThrows(IllegalStateException.class, () -> ScheduleChecker.simulate(s, 1));
        assertEquals("rank 0's send 0 to rank 1 carries c1, but rank 1's receive 0 from rank 0 is for c2: the pair "
                + "issues its operations in different orders", run.getMessage());
    }

    @Test
    void aReceiveWithoutSendIsADeadlockOrAMismatch() {
        NcclSchedule s = schedule(List.of(one(send(1, 1))), List.of(one(recv(1, 0)), one(recv(2, 0))));
        assertThrows(IllegalStateException.class, () -> ScheduleChecker.checkPairOrder(s));
        IllegalStateException once = assertThrows(IllegalStateException.class, () -> ScheduleChecker.simulate(s, 1));
        assertEquals("deadlock after 1 transfer: rank 1 at execution 0 waits in r1 RECV c2 <- r0 (posted)",
                once.getMessage());
        IllegalStateException twice = assertThrows(IllegalStateException.class, () -> ScheduleChecker.simulate(s, 2));
        assertEquals("rank 0's send 1 to rank 1 carries c1, but rank 1's receive 1 from rank 0 is for c2: the pair "
                + "issues its operations in different orders", twice.getMessage(),
                "rank 0's next execution sends c1, which rank 1 would take as c2");
    }

    @Test
    void atLeastOneExecution() {
        assertThrows(IllegalArgumentException.class, () -> ScheduleChecker.simulate(NcclSchedule.NONE, 0));
        assertEquals(0, ScheduleChecker.simulate(NcclSchedule.NONE, 1));
    }

    @Test
    void scheduleRecordsCheckTheirShape() {
        assertThrows(IllegalArgumentException.class, () -> new NcclSchedule(List.of(1, 2), List.of(List.of())));
        assertThrows(IllegalArgumentException.class, () -> new CommGroup(List.of()));
        assertEquals("SEND c3 -> r1", send(3, 1).toString());
        assertEquals("RECV c3 <- r0", recv(3, 0).toString());
        assertEquals("group(SEND c1 -> r1, RECV c2 <- r1)", group(send(1, 1), recv(2, 1)).toString());
    }

    // ---- collectives ----

    @Test
    void anAllReduceCompletesWhenEveryMemberReachedIt() {
        NcclSchedule s = schedule(List.of(one(allReduce(0, 0))), List.of(one(allReduce(0, 1))),
                List.of(one(allReduce(0, 2))));
        assertEquals(4, ScheduleChecker.simulate(s, 4), "one collective step per execution");
        NcclSchedule mixed = schedule(List.of(one(send(1, 1)), one(allReduce(0, 0))),
                List.of(one(recv(1, 0)), one(allReduce(0, 1))));
        assertEquals(3 * (1 + 1), ScheduleChecker.simulate(mixed, 3));
    }

    @Test
    void aCollectiveBehindAnUnmatchedSendDeadlocks() {
        // Rank 0 sends before the all-reduce, rank 1 receives after it.
        NcclSchedule s = schedule(List.of(one(send(1, 1)), one(allReduce(0, 0))),
                List.of(one(allReduce(0, 1)), one(recv(1, 0))));
        assertDoesNotThrow(() -> ScheduleChecker.checkPairOrder(s), "the pair agrees; collectives are not pairs");
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> ScheduleChecker.simulate(s, 1));
        assertEquals("deadlock after 0 transfers and 0 collectives: rank 0 at execution 0 waits in r0 SEND c1 -> r1 "
                + "(posted); rank 1 at execution 0 waits in r1 ALL_REDUCE #0 (comm rank 1) (posted)", e.getMessage());

        NcclSchedule grouped = schedule(List.of(group(send(1, 1), allReduce(0, 0))),
                List.of(group(allReduce(0, 1), recv(1, 0))));
        assertEquals(2 * 2, ScheduleChecker.simulate(grouped, 2), "issued together, they complete together");
    }

    @Test
    void collectivesOnThreeCommunicatorsInACycleDeadlock() {
        // #0 over ranks {0, 1}, #1 over {1, 2}, #2 over {0, 2}: each rank starts with a collective its next peer
        // reaches only second.
        NcclSchedule s = schedule(List.of(one(allReduce(0, 0)), one(allReduce(2, 0))),
                List.of(one(allReduce(1, 0)), one(allReduce(0, 1))),
                List.of(one(allReduce(2, 1)), one(allReduce(1, 1))));
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> ScheduleChecker.simulate(s, 1));
        assertEquals("deadlock after 0 transfers and 0 collectives: rank 0 at execution 0 waits in r0 ALL_REDUCE #0 "
                + "(comm rank 0) (posted); rank 1 at execution 0 waits in r1 ALL_REDUCE #1 (comm rank 0) (posted); "
                + "rank 2 at execution 0 waits in r2 ALL_REDUCE #2 (comm rank 1) (posted)", e.getMessage());

        NcclSchedule ordered = schedule(List.of(one(allReduce(0, 0)), one(allReduce(2, 0))),
                List.of(one(allReduce(0, 1)), one(allReduce(1, 0))),
                List.of(one(allReduce(1, 1)), one(allReduce(2, 1))));
        assertEquals(3 * 3, ScheduleChecker.simulate(ordered, 3));
    }

    @Test
    void ranksOfOneCommunicatorIssuingItsCollectivesInDifferentOrdersAreRefused() {
        // #0 and #1 have the same members, so they share a communicator, which matches collectives in issue order.
        NcclSchedule s = schedule(List.of(one(allReduce(0, 0)), one(allReduce(1, 0))),
                List.of(one(allReduce(1, 1)), one(allReduce(0, 1))));
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> ScheduleChecker.simulate(s, 1));
        assertEquals("rank 1's collective 0 on its communicator is allreduce#1, but rank 0's is allreduce#0: the ranks "
                + "of a communicator must issue its collectives in the same order", e.getMessage());
    }

    @Test
    void aMemberThatFallsBehindIsADeadlock() {
        NcclSchedule s = schedule(List.of(one(allReduce(0, 0)), one(allReduce(0, 0))), List.of(one(allReduce(0, 1))));
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> ScheduleChecker.simulate(s, 1));
        assertEquals("deadlock after 0 transfers and 1 collective: rank 0 at execution 0 waits in r0 ALL_REDUCE #0 "
                + "(comm rank 0) (posted)", e.getMessage());
    }

    @Test
    void aPlanWhoseScheduleIssuesACollectiveWithoutAMemberIsRefused() {
        ActorRef<Gpu> a = GpuActors.gpuActor(1, "a");
        ActorRef<Gpu> b = GpuActors.gpuActor(2, "b");
        InputNode<String> in = Graph.input();
        List<Node<DeviceTensor>> sums = Graph.allReduce(List.of(a.bind(Gpu::load, in), b.bind(Gpu::load, in)));
        ExecutionPlan plan = GraphCompiler.compile(Graph.outputs(sums.get(0), sums.get(1)),
                GpuActors.places().put(a, GpuActors.gpu(0)).put(b, GpuActors.gpu(1)).topology(), CompileOptions.defaults());
        assertEquals(2, ScheduleChecker.simulate(plan, 2));
        NcclSchedule withoutB = new NcclSchedule(plan.nccl().ranks(), List.of(plan.nccl().groups().get(0), List.of()));
        ExecutionPlan broken = new ExecutionPlan(plan.inputArity(), plan.maxInflight(), plan.nodes(), plan.channels(),
                plan.schedules(), plan.outputs(), plan.multiOutput(), plan.devices(), withoutB, plan.communicators(),
                plan.collectives());
        assertEquals("allreduce#0 is issued by ranks [0], but its members are ranks [0, 1]", assertThrows(
                IllegalStateException.class, () -> ScheduleChecker.simulate(broken, 1)).getMessage());
    }

    @Test
    void allReduceStepsPrint() {
        assertEquals("ALL_REDUCE #2 (comm rank 1)", allReduce(2, 1).toString());
        assertEquals("group(SEND c1 -> r1, ALL_REDUCE #0 (comm rank 0))", group(send(1, 1), allReduce(0, 0)).toString());
    }
}
