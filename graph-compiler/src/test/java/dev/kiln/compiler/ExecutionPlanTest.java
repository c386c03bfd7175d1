package dev.kiln.compiler;

import dev.kiln.graph.internal.GraphInternals;
import dev.kiln.compiler.ExecutionPlan.ActorSchedule;
import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.compiler.ExecutionPlan.Compute;
import dev.kiln.compiler.ExecutionPlan.NodeSpec;
import dev.kiln.compiler.ExecutionPlan.Operation;
import dev.kiln.compiler.ExecutionPlan.OutputRead;
import dev.kiln.compiler.TestActors.Text;
import dev.kiln.compiler.Topology.ActorPlacement;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.InputNode2;
import dev.kiln.graph.Node;
import dev.kiln.graph.Transport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.ArrayList;
import java.util.List;

import static dev.kiln.compiler.TestActors.text;
import static dev.kiln.compiler.TestActors.topology;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(30)
class ExecutionPlanTest {

    private final ActorRef<Text> a = text(1, "a");
    private final ActorRef<Text> b = text(2, "b");
    private final ActorRef<Text> c = text(3, "c");
    private final Topology topology = topology(a, b, c);

    /** input -> a.upper -> (b.lower, c.repeat(_, 2)) -> a.concat. */
    private Node<String> diamond() {
        InputNode<String> in = Graph.input();
        Node<String> top = a.bind(Text::upper, in);
        Node<String> left = b.bind(Text::lower, top);
        Node<String> right = c.bind(Text::repeat, top, Graph.constant(2));
        return a.bind(Text::concat, left, right);
    }

    @Test
    void diamondAsText() {
        ExecutionPlan plan = GraphCompiler.compile(diamond(), topology, CompileOptions.defaults().maxInflight(4));
        assertEquals("""
                ExecutionPlan: 3 actors, 5 channels, 1 input arg, 1 output, maxInflight 4
                channels:
                  c0 input: driver -> [a], IN_PROCESS (AUTO: writer and readers in one JVM), 4 slots
                  c1 a.upper: a -> [b, c], IN_PROCESS (AUTO: writer and readers in one JVM), 4 slots
                  c2 b.lower: b -> [a], IN_PROCESS (AUTO: writer and readers in one JVM), 4 slots
                  c3 c.repeat: c -> [a], IN_PROCESS (AUTO: writer and readers in one JVM), 4 slots
                  c4 a.concat: a -> [driver], IN_PROCESS (AUTO: writer and readers in one JVM), 4 slots
                actor a @ localhost/driver:
                  READ    c0 -> l0
                  COMPUTE Text.upper(l0) -> l1
                  WRITE   l1 -> c1
                  READ    c2 -> l2
                  READ    c3 -> l3
                  COMPUTE Text.concat(l2, l3) -> l4
                  WRITE   l4 -> c4
                actor b @ localhost/driver:
                  READ    c1 -> l0
                  COMPUTE Text.lower(l0) -> l1
                  WRITE   l1 -> c2
                actor c @ localhost/driver:
                  READ    c1 -> l0
                  COMPUTE Text.repeat(l0, 2) -> l1
                  WRITE   l1 -> c3
                driver: WRITE c0, READ c4
                """, plan.toString());
    }

    @Test
    void diamondAsDot() {
        ExecutionPlan plan = GraphCompiler.compile(diamond(), topology, CompileOptions.defaults());
        assertEquals("""
                digraph kiln {
                  rankdir=LR;
                  node [shape=box];
                  subgraph cluster_driver {
                    label="driver";
                    n_in [label="input", shape=ellipse];
                    n_out [label="output", shape=ellipse];
                  }
                  subgraph cluster_a1 {
                    label="a";
                    n1 [label="a.upper"];
                    n4 [label="a.concat"];
                  }
                  subgraph cluster_a2 {
                    label="b";
                    n2 [label="b.lower"];
                  }
                  subgraph cluster_a3 {
                    label="c";
                    n3 [label="c.repeat"];
                  }
                  n_in -> n1 [label="c0 IN_PROCESS"];
                  n1 -> n2 [label="c1 IN_PROCESS"];
                  n1 -> n3 [label="c1 IN_PROCESS"];
                  n2 -> n4 [label="c2 IN_PROCESS"];
                  n3 -> n4 [label="c3 IN_PROCESS"];
                  n4 -> n_out [label="c4 IN_PROCESS"];
                }
                """, plan.toDot());
    }

    /** Input arguments, a string constant, a local edge, the same output twice. */
    private Node<List<String>> multiOutput() {
        InputNode2<String, String> in = Graph.input2();
        Node<String> x = a.bind(Text::join3, in.first(), Graph.constant("s\"q"), in.second());
        Node<String> y = b.bind(Text::concat, x, b.bind(Text::hello));
        return Graph.outputs(List.of(y, x, y));
    }

    @Test
    void multiOutputAsText() {
        ExecutionPlan plan = GraphCompiler.compile(multiOutput(), topology, CompileOptions.defaults());
        assertEquals("""
                ExecutionPlan: 2 actors, 3 channels, 2 input args, 3 outputs (list), maxInflight 10
                channels:
                  c0 input: driver -> [a, b], IN_PROCESS (AUTO: writer and readers in one JVM), 10 slots
                  c1 a.join3: a -> [b, driver], IN_PROCESS (AUTO: writer and readers in one JVM), 10 slots
                  c2 b.concat: b -> [driver], IN_PROCESS (AUTO: writer and readers in one JVM), 10 slots
                actor a @ localhost/driver:
                  READ    c0 -> l0
                  COMPUTE Text.join3(l0[0], "s"q", l0[1]) -> l1
                  WRITE   l1 -> c1
                actor b @ localhost/driver:
                  READ    c0 -> l0
                  COMPUTE Text.hello() -> l1
                  READ    c1 -> l2
                  COMPUTE Text.concat(l2, l1) -> l3
                  WRITE   l3 -> c2
                driver: WRITE c0, READ c2, c1, c2
                """, plan.toString());
    }

    @Test
    void multiOutputAsDot() {
        ExecutionPlan plan = GraphCompiler.compile(multiOutput(), topology, CompileOptions.defaults());
        assertEquals("""
                digraph kiln {
                  rankdir=LR;
                  node [shape=box];
                  subgraph cluster_driver {
                    label="driver";
                    n_in [label="input", shape=ellipse];
                    n_out [label="output", shape=ellipse];
                  }
                  subgraph cluster_a1 {
                    label="a";
                    n3 [label="a.join3"];
                  }
                  subgraph cluster_a2 {
                    label="b";
                    n4 [label="b.hello"];
                    n5 [label="b.concat"];
                  }
                  n_in -> n3 [label="c0 IN_PROCESS"];
                  n_in -> n3 [label="c0 IN_PROCESS"];
                  n3 -> n5 [label="c1 IN_PROCESS"];
                  n4 -> n5 [label="local"];
                  n5 -> n_out [label="c2 IN_PROCESS"];
                  n3 -> n_out [label="c1 IN_PROCESS"];
                  n5 -> n_out [label="c2 IN_PROCESS"];
                }
                """, plan.toDot());
    }

    @Test
    void graphWithoutInputAsText() {
        ExecutionPlan plan = GraphCompiler.compile(a.bind(Text::hello), topology, CompileOptions.defaults().maxInflight(1));
        assertEquals("""
                ExecutionPlan: 1 actor, 2 channels, 0 input args, 1 output, maxInflight 1
                channels:
                  c0 input: driver -> [a], IN_PROCESS (AUTO: writer and readers in one JVM), 1 slot
                  c1 a.hello: a -> [driver], IN_PROCESS (AUTO: writer and readers in one JVM), 1 slot
                actor a @ localhost/driver:
                  READ    c0 -> l0
                  COMPUTE Text.hello() -> l1
                  WRITE   l1 -> c1
                driver: WRITE c0, READ c1
                """, plan.toString());
    }

    @Test
    void dotEscapesQuotesInNames() {
        ActorRef<Text> quoted = GraphInternals.actorRef(7, "say \"hi\"", Text.class, TestActors.RUNTIME);
        InputNode<String> in = Graph.input();
        String dot = GraphCompiler.compile(quoted.bind(Text::upper, in), topology(quoted), CompileOptions.defaults()).toDot();
        assertTrue(dot.contains("    label=\"say \\\"hi\\\"\";\n"), dot);
        assertTrue(dot.contains("    n1 [label=\"say \\\"hi\\\".upper\"];\n"), dot);
    }

    @Test
    void compilingTwiceGivesEqualPlans() {
        Node<String> out = diamond();
        ExecutionPlan first = GraphCompiler.compile(out, topology, CompileOptions.defaults());
        ExecutionPlan second = GraphCompiler.compile(out, topology, CompileOptions.defaults());
        assertNotSame(first, second);
        assertEquals(first, second);
        assertEquals(first.hashCode(), second.hashCode());
        assertEquals(first.toString(), second.toString());
        assertEquals(first.toDot(), second.toDot());
        List<Compute> computes1 = computes(first);
        List<Compute> computes2 = computes(second);
        assertEquals(4, computes1.size());
        for (int i = 0; i < computes1.size(); i++) {
            assertSame(computes1.get(i).method().function(), computes2.get(i).method().function(),
                    "the plan holds the function the user bound");
        }
        assertSame(out.method().function(), computes1.get(3).method().function());
    }

    @Test
    void equalGraphsBuiltTwiceGiveEqualPlansButDifferentFunctions() {
        ExecutionPlan first = GraphCompiler.compile(diamond(), topology, CompileOptions.defaults());
        ExecutionPlan second = GraphCompiler.compile(diamond(), topology, CompileOptions.defaults());
        // Non-capturing method references are one object per call site: equal plans.
        assertEquals(first, second);
        assertNotEquals(first, GraphCompiler.compile(diamond(), topology, CompileOptions.defaults().maxInflight(3)));
    }

    @Test
    void recordsCopyTheirLists() {
        List<Integer> upstream = new ArrayList<>(List.of(1, 2));
        NodeSpec node = new NodeSpec(3, "a.concat", 1, upstream);
        upstream.add(9);
        assertEquals(List.of(1, 2), node.upstream());
        assertThrows(UnsupportedOperationException.class, () -> node.upstream().add(4));

        List<Integer> readers = new ArrayList<>(List.of(1));
        ChannelSpec channel = new ChannelSpec(0, 0, -1, readers, 1, 1, Transport.IN_PROCESS, "r");
        readers.clear();
        assertEquals(List.of(1), channel.readers());

        List<Operation> ops = new ArrayList<>();
        ActorSchedule schedule = new ActorSchedule(1, "a", ActorPlacement.IN_DRIVER, 0, ops);
        ops.add(new ExecutionPlan.Write(0, 0));
        assertEquals(List.of(), schedule.ops());

        List<OutputRead> outputs = new ArrayList<>(List.of(new OutputRead(1, 0)));
        ExecutionPlan plan = new ExecutionPlan(0, 1, List.of(node), List.of(channel), List.of(schedule), outputs, false);
        outputs.clear();
        assertEquals(List.of(new OutputRead(1, 0)), plan.outputs());
        assertThrows(UnsupportedOperationException.class, () -> plan.channels().clear());
        assertEquals(List.of(), plan.devices(), "the seven-argument plan has no GPUs");
        assertEquals(ExecutionPlan.NcclSchedule.NONE, plan.nccl());

        List<ExecutionPlan.DeviceMemory> devices = new ArrayList<>(List.of(new ExecutionPlan.DeviceMemory("h", 0, "gpu0", 9, 8, 7, 0)));
        ExecutionPlan gpu = new ExecutionPlan(0, 1, List.of(node), List.of(channel), List.of(schedule), List.of(), false,
                devices, ExecutionPlan.NcclSchedule.NONE);
        devices.clear();
        assertEquals(java.util.Map.of("h/gpu0", 7L), gpu.deviceBytes());
        assertThrows(UnsupportedOperationException.class, () -> gpu.deviceBytes().clear());
    }

    private static List<Compute> computes(ExecutionPlan plan) {
        List<Compute> all = new ArrayList<>();
        for (ActorSchedule s : plan.schedules()) {
            for (Operation op : s.ops()) {
                if (op instanceof Compute c) {
                    all.add(c);
                }
            }
        }
        all.sort((x, y) -> Integer.compare(x.node(), y.node()));
        return all;
    }
}
