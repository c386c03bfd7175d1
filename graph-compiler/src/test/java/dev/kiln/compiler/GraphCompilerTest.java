package dev.kiln.compiler;

import dev.kiln.graph.internal.GraphInternals;
import dev.kiln.compiler.ExecutionPlan.ActorSchedule;
import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.compiler.ExecutionPlan.Compute;
import dev.kiln.compiler.ExecutionPlan.ConstantArg;
import dev.kiln.compiler.ExecutionPlan.InputArg;
import dev.kiln.compiler.ExecutionPlan.LocalArg;
import dev.kiln.compiler.ExecutionPlan.NodeSpec;
import dev.kiln.compiler.ExecutionPlan.OutputRead;
import dev.kiln.compiler.ExecutionPlan.Read;
import dev.kiln.compiler.ExecutionPlan.Write;
import dev.kiln.compiler.TestActors.LoudText;
import dev.kiln.compiler.TestActors.Num;
import dev.kiln.compiler.TestActors.Text;
import dev.kiln.compiler.Topology.ActorPlacement;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.InputNode2;
import dev.kiln.graph.InputNode3;
import dev.kiln.graph.Node;
import dev.kiln.graph.Transport;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.function.Executable;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static dev.kiln.compiler.ExecutionPlan.DRIVER;
import static dev.kiln.compiler.TestActors.num;
import static dev.kiln.compiler.TestActors.text;
import static dev.kiln.compiler.TestActors.topology;
import static org.junit.jupiter.api.Assertions.assertAll;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(30)
class GraphCompilerTest {

    private static final CompileOptions OPTIONS = CompileOptions.defaults();

    private final ActorRef<Text> a = text(1, "a");
    private final ActorRef<Text> b = text(2, "b");
    private final ActorRef<Text> c = text(3, "c");
    private final ActorRef<Text> d = text(4, "d");
    private final ActorRef<Num> n = num(5, "n");
    private final Topology all = topology(a, b, c, d, n);

    /**
     * A node as another type, as a raw type or an unchecked cast lets it through javac: {@code GraphCompiler} must
     * still refuse what does not fit.
     */
    @SuppressWarnings("unchecked")
    static <T> Node<T> unchecked(Node<?> node) {
        return (Node<T>) node;
    }

    private ExecutionPlan compile(Node<?> output) {
        return GraphCompiler.compile(output, all, OPTIONS);
    }

    /** Compiles, expects a failure, checks the node it names and that the message holds every fragment. */
    private GraphCompileException rejects(Node<?> output, String node, String... fragments) {
        return rejects(() -> compile(output), node, fragments);
    }

    private static GraphCompileException rejects(Executable compile, String node, String... fragments) {
        GraphCompileException e = assertThrows(GraphCompileException.class, compile);
        assertEquals(node, e.node(), e::getMessage);
        assertTrue(e.getMessage().startsWith(node + ": "), e::getMessage);
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), () -> "expected \"" + f + "\" in: " + e.getMessage());
        }
        return e;
    }

    @Nested
    class Validation {

        @Test
        void unreadComponentsOfATupleInputAreFine() {
            InputNode3<String, String, String> in = Graph.input3();
            ExecutionPlan plan = compile(a.bind(Text::concat, in.first(), in.third()));
            assertEquals(3, plan.inputArity());
            Compute compute = (Compute) plan.schedules().get(0).ops().get(1);
            assertEquals(List.of(new InputArg(0, 0), new InputArg(0, 2)), compute.args());
        }

        @Test
        void theWholeTupleInputIsNotAnArgument() {
            InputNode2<String, String> in = Graph.input2();
            Node<String> out = a.bind(Text::concat, in.first(), unchecked(in));
            rejects(out, "input", "a call takes the whole Tuple2 input", "bind its components (first(), second(), ...)");
        }

        @Test
        void componentNodesAreTheSameEachCall() {
            InputNode2<String, String> in = Graph.input2();
            assertSame(in.first(), in.first());
            assertSame(in.second(), in.second());
            assertEquals("input[1]", in.second().label());
        }

        @Test
        void callThatReachesNoOutput() {
            InputNode<String> in = Graph.input();
            Node<String> x = a.bind(Text::upper, in);
            Node<String> y = b.bind(Text::lower, x);
            c.bind(Text::length, x);
            rejects(y, "c.length", "does not reach an output", "pass it to Graph.outputs(...)",
                    "use it as an argument, or do not bind it");
        }

        @Test
        void callBoundOnTheOutputReachesNoOutput() {
            InputNode<String> in = Graph.input();
            Node<String> x = a.bind(Text::upper, in);
            b.bind(Text::lower, x);
            rejects(x, "b.lower", "does not reach an output");
        }

        @Test
        void callBoundOnTheInputReachesNoOutput() {
            InputNode<String> in = Graph.input();
            Node<String> x = a.bind(Text::upper, in);
            b.bind(Text::lower, in);
            rejects(x, "b.lower", "does not reach an output");
        }

        @Test
        void callReachingOnlyAnotherOutputsListIsDangling() {
            InputNode<String> in = Graph.input();
            Node<String> x = a.bind(Text::upper, in);
            Node<String> y = b.bind(Text::lower, in);
            Graph.outputs(x, y); // built, then abandoned
            rejects(x, "b.lower", "does not reach an output");
        }

        @Test
        void nodeOfACompiledGraph() {
            InputNode<String> in = Graph.input();
            Node<String> x = a.bind(Text::upper, in);
            Node<String> y = b.bind(Text::lower, x);
            Object compiled = "graph#1";
            assertNull(GraphInternals.claim(x, compiled));
            assertSame(compiled, GraphInternals.claim(x, "graph#2"), "the first owner keeps the node");
            rejects(y, "a.upper", "already compiled (graph#1)", "a node can be compiled once",
                    "bind the calls again to build a new graph");
        }

        @Test
        void recompileAcceptsTheNodesOfItsOwnGraphOnlyAndFollowsTheNewPlacement() {
            InputNode<String> in = Graph.input();
            Node<String> x = a.bind(Text::upper, in);
            Node<String> y = b.bind(Text::lower, x);
            Object graph = "graph#1";
            for (Node<?> node : List.of(in, x, y)) {
                assertNull(GraphInternals.claim(node, graph));
            }
            ExecutionPlan first = GraphCompiler.recompile(y, graph, all, OPTIONS);
            assertEquals(Transport.IN_PROCESS, first.channels().get(1).transport());
            // b recreated in another JVM of the same host: the edge a -> b now goes through shared memory
            Map<Integer, ActorPlacement> moved = new java.util.HashMap<>(all.actors());
            moved.put(b.id(), new ActorPlacement(all.driverProcess().host(), "worker-2"));
            ExecutionPlan again = GraphCompiler.recompile(y, graph, new Topology(all.driverProcess(), moved), OPTIONS);
            assertEquals(Transport.SHARED_MEMORY, again.channels().get(1).transport(), again::toString);
            assertEquals("worker-2", again.schedules().get(1).placement().process());
            for (Executable other : List.<Executable>of(() -> GraphCompiler.recompile(y, "graph#2", all, OPTIONS),
                    () -> compile(y))) {
                GraphCompileException e = assertThrows(GraphCompileException.class, other);
                assertTrue(e.getMessage().contains("already compiled (graph#1)"), e::getMessage);
            }
        }

        @Test
        void inputOfACompiledGraph() {
            InputNode<String> in = Graph.input();
            Node<String> x = a.bind(Text::upper, in);
            GraphInternals.claim(in, "graph#1");
            rejects(x, "input", "already compiled");
        }

        @Test
        void outputsListOfACompiledGraph() {
            InputNode<String> in = Graph.input();
            Node<List<String>> outs = Graph.outputs(List.of(a.bind(Text::upper, in)));
            GraphInternals.claim(outs, "graph#1");
            rejects(outs, "outputs", "already compiled");
        }

        @Test
        void actorMissingFromTheTopology() {
            InputNode<String> in = Graph.input();
            Node<String> y = b.bind(Text::lower, a.bind(Text::upper, in));
            Executable compile = () -> GraphCompiler.compile(y, topology(a), OPTIONS);
            rejects(compile, "b.lower", "actor b is not hosted by the runtime that compiles this graph",
                    "create the actor with this Kiln");
        }

        @Test
        void actorsOfTwoRuntimes() {
            ActorRef<Text> other = GraphInternals.actorRef(a.id(), "a", Text.class, "other-runtime");
            InputNode<String> in = Graph.input();
            Node<String> y = other.bind(Text::lower, a.bind(Text::upper, in));
            rejects(y, "a.lower", "actors of two different runtimes in one graph (test-runtime and other-runtime)",
                    "create all actors with the same Kiln");
        }

        @Test
        void upstreamTypeDoesNotFitTheParameter() {
            InputNode<String> in = Graph.input();
            // javac refuses this; a raw type or an unchecked cast lets it through, and compile catches it.
            Node<Integer> y = n.bind(Num::boxedInc, unchecked(a.bind(Text::upper, in)));
            GraphCompileException e = rejects(y, "n.boxedInc");
            assertEquals("n.boxedInc: argument 1 of Num.boxedInc takes java.lang.Integer but upstream a.upper returns "
                    + "java.lang.String; bind a node of a matching type or change the parameter", e.getMessage());
        }

        @Test
        void upstreamTypeCheckedForEveryArgument() {
            InputNode<String> in = Graph.input();
            Node<Integer> len = n.bind(Num::number, in);
            Node<String> y = a.bind(Text::concat, in, unchecked(len));
            rejects(y, "a.concat", "argument 2 of Text.concat takes java.lang.String but upstream n.number returns "
                    + "java.lang.Integer");
        }

        @Test
        void finalClassIntoUnrelatedInterface() {
            InputNode<String> in = Graph.input();
            rejects(n.bind(Num::ofRunnable, unchecked(n.bind(Num::number, in))), "n.ofRunnable",
                    "takes java.lang.Runnable but upstream n.number returns java.lang.Integer");
            InputNode<String> in2 = Graph.input();
            rejects(n.bind(Num::ofMap, unchecked(a.bind(Text::upper, in2))), "n.ofMap",
                    "takes java.util.Map but upstream a.upper returns java.lang.String");
        }

        @Test
        void voidResultIntoAParameter() {
            InputNode<Integer> in = Graph.input();
            rejects(n.bind(Num::boxedInc, unchecked(n.bind(Num::nothing, in))), "n.boxedInc",
                    "takes java.lang.Integer but upstream n.nothing returns java.lang.Void");
        }

        @Test
        void constantOfTheWrongType() {
            rejects(n.bind(Num::boxedInc, unchecked(Graph.constant("seven"))), "n.boxedInc",
                    "argument 1 of Num.boxedInc takes java.lang.Integer but the constant passed is a java.lang.String",
                    "bind a node of a matching type or change the parameter");
            rejects(n.bind(Num::inc, unchecked(Graph.constant(7L))), "n.inc", "takes java.lang.Integer but the constant passed is a java.lang.Long");
        }

        @Test
        void constantOfASupertypeOfTheParameter() {
            // The constant's class is exact: an Object is never a String, so every execution would fail.
            rejects(a.bind(Text::upper, unchecked(Graph.constant(new Object()))), "a.upper",
                    "takes java.lang.String but the constant passed is a java.lang.Object");
        }

        @Test
        void constantNotImplementingTheParameterInterface() {
            rejects(n.bind(Num::ofRunnable, unchecked(Graph.constant(new ArrayList<Integer>()))), "n.ofRunnable",
                    "takes java.lang.Runnable but the constant passed is a java.util.ArrayList");
        }

        @Test
        void nullConstantForAPrimitiveParameter() {
            InputNode<String> in = Graph.input();
            rejects(a.bind(Text::repeat, in, Graph.constant(null)), "a.repeat",
                    "argument 2 of Text.repeat is a primitive int but the constant passed is null; pass a value");
        }

        @Test
        void nullConstantForAReferenceParameter() {
            ExecutionPlan plan = compile(n.bind(Num::boxedInc, Graph.constant(null)));
            Compute compute = (Compute) plan.schedules().get(0).ops().get(1);
            assertEquals(List.of(new ConstantArg(null)), compute.args());
        }

        @Test
        void outputIsTheInput() {
            InputNode<String> in = Graph.input();
            rejects(in, "input", "an output must be an actor method call", "bind a method on the input instead of returning it");
        }

        @Test
        void outputIsAnInputArgument() {
            InputNode2<String, String> in = Graph.input2();
            rejects(in.first(), "input[0]", "an output must be an actor method call");
        }

        @Test
        void inputAmongSeveralOutputs() {
            InputNode<String> in = Graph.input();
            rejects(Graph.outputs(a.bind(Text::upper, in), in), "input", "bind a method on the input instead of returning it");
        }

        @Test
        void outputsNestedInOutputs() {
            InputNode<String> in = Graph.input();
            Node<String> x = a.bind(Text::upper, in);
            rejects(Graph.outputs(x, Graph.outputs(x, x)), "outputs", "do not nest Graph.outputs(...)");
            rejects(Graph.outputs(List.of(unchecked(Graph.outputs(List.of(x))))), "outputs", "do not nest");
        }

        @Test
        void outputsAsAnArgument() {
            InputNode<String> in = Graph.input();
            Node<List<String>> list = Graph.outputs(List.of(a.bind(Text::upper, in)));
            rejects(n.bind(Num::echo, list), "n.echo", "Graph.outputs(...) cannot be a method argument",
                    "pass the individual nodes");
        }

        @Test
        void twoInputsInOneCallAreRejectedWhenBound() {
            InputNode<String> in1 = Graph.input();
            InputNode<String> in2 = Graph.input();
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> a.bind(Text::concat, in1, in2));
            assertTrue(e.getMessage().contains("two different Graph.input() nodes"), e.getMessage());
            assertTrue(e.getMessage().contains("use Graph.input2() (first(), second())"), e.getMessage());
        }

        @Test
        void twoInputsJoinedLaterAreRejectedWhenBound() {
            InputNode<String> in1 = Graph.input();
            InputNode<String> in2 = Graph.input();
            Node<String> x = a.bind(Text::upper, in1);
            Node<String> y = b.bind(Text::upper, b.bind(Text::hello)); // no input yet
            Node<String> z = b.bind(Text::lower, in2);
            Node<String> xy = c.bind(Text::concat, x, y); // one input: fine
            assertThrows(IllegalArgumentException.class, () -> d.bind(Text::concat, xy, z));
            assertThrows(IllegalArgumentException.class, () -> Graph.outputs(xy, z));
        }

        @Test
        void outputsNeedsNodes() {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Graph.outputs(List.of()));
            assertEquals("Graph.outputs needs at least one node", e.getMessage());
            NullPointerException npe = assertThrows(NullPointerException.class,
                    () -> Graph.outputs(a.bind(Text::hello), null));
            assertEquals("output 1 of Graph.outputs is null", npe.getMessage());
            assertThrows(NullPointerException.class, () -> Graph.outputs(Arrays.asList(a.bind(Text::hello), null)));
        }

        @Test
        void typesThatMayFitPass() {
            // What javac refuses but a class at run time may satisfy (an unchecked cast lets it through): compile
            // passes it, as it must not refuse a graph whose values fit.
            InputNode<Integer> in = Graph.input();
            Node<Object> generic = n.bind(Num::echo, in); // a generic method returns Object
            Node<Integer> viaObject = n.bind(Num::boxedInc, unchecked(generic)); // an Object may be an Integer
            Node<Integer> boxedIntoPrimitive = n.bind(Num::inc, n.bind(Num::boxedInc, viaObject));
            Node<Integer> intoSupertype = n.bind(Num::ofNumber, boxedIntoPrimitive);
            Node<Integer> implIntoInterface = n.bind(Num::size, n.bind(Num::arrayList, intoSupertype));
            Node<Integer> interfaceIntoImpl = n.bind(Num::first, unchecked(n.bind(Num::list, implIntoInterface)));
            Node<Integer> interfaceIntoInterface = n.bind(Num::ofRunnable, unchecked(n.bind(Num::list, interfaceIntoImpl)));
            Node<Integer> openClassIntoInterface = n.bind(Num::ofRunnable, unchecked(n.bind(Num::arrayList, interfaceIntoInterface)));
            Node<Integer> constants = n.bind(Num::add, openClassIntoInterface, Graph.constant(3));
            assertDoesNotThrow(() -> compile(constants));
        }

        @Test
        void methodOfASuperclassOnASubclassActor() {
            ActorRef<LoudText> loud = GraphInternals.actorRef(9, "loud", LoudText.class, TestActors.RUNTIME);
            InputNode<String> in = Graph.input();
            Node<String> out = loud.bind(Text::upper, in);
            assertDoesNotThrow(() -> GraphCompiler.compile(out, topology(loud), OPTIONS));
        }

        @Test
        void inProcessAskedAcrossProcesses() {
            InputNode<String> in = Graph.input();
            Node<String> x = a.bind(Text::upper, in).withTransport(Transport.IN_PROCESS);
            Node<String> y = b.bind(Text::lower, x);
            Topology twoJvms = new Topology(ActorPlacement.IN_DRIVER,
                    Map.of(a.id(), ActorPlacement.IN_DRIVER, b.id(), new ActorPlacement("localhost", "w1")));
            rejects(() -> GraphCompiler.compile(y, twoJvms, OPTIONS), "a.upper",
                    "Transport.IN_PROCESS was asked for, but the value goes from localhost/driver to [localhost/w1]");
        }

        @Test
        void compilingChangesNoNode() {
            InputNode<String> in = Graph.input();
            Node<String> x = a.bind(Text::upper, in);
            Node<String> y = b.bind(Text::lower, x);
            compile(y);
            assertNull(in.compiledBy());
            assertNull(x.compiledBy());
            assertNull(y.compiledBy());
            assertEquals(List.of(y), x.downstream());
        }
    }

    @Nested
    class Structure {

        @Test
        void sharedMemoryBetweenJvmsOfOneHost() {
            InputNode<String> in = Graph.input();
            Node<String> x = a.bind(Text::upper, in);
            Node<String> y = b.bind(Text::lower, x);
            Node<String> z = a.bind(Text::concat, x, y);
            Topology twoJvms = new Topology(ActorPlacement.IN_DRIVER,
                    Map.of(a.id(), ActorPlacement.IN_DRIVER, b.id(), new ActorPlacement("localhost", "w1")));
            ExecutionPlan plan = GraphCompiler.compile(z, twoJvms, OPTIONS);
            String shm = "AUTO: writer and readers in different JVMs on localhost";
            String local = "AUTO: writer and readers in one JVM";
            assertEquals(List.of(
                    new ChannelSpec(0, 0, DRIVER, List.of(1), 10, 1 << 20, Transport.IN_PROCESS, local),
                    new ChannelSpec(1, 1, 1, List.of(2), 10, 1 << 20, Transport.SHARED_MEMORY, shm),
                    new ChannelSpec(2, 2, 2, List.of(1), 10, 1 << 20, Transport.SHARED_MEMORY, shm),
                    new ChannelSpec(3, 3, 1, List.of(DRIVER), 10, 1 << 20, Transport.IN_PROCESS, local)),
                    plan.channels());
            assertEquals(new ActorPlacement("localhost", "w1"), plan.schedules().get(1).placement());
        }

        @Test
        void aeronUdpWhenSomeReaderIsOnAnotherHost() {
            InputNode<String> in = Graph.input();
            Node<String> x = a.bind(Text::upper, in);
            Node<String> y = b.bind(Text::lower, x);
            Node<String> z = a.bind(Text::concat, x, y);
            ActorPlacement remote = new ActorPlacement("node-2", "w2");
            Topology twoHosts = new Topology(ActorPlacement.IN_DRIVER,
                    Map.of(a.id(), ActorPlacement.IN_DRIVER, b.id(), remote));
            ExecutionPlan plan = GraphCompiler.compile(z, twoHosts, OPTIONS);
            String local = "AUTO: writer and readers in one JVM";
            assertEquals(List.of(
                    new ChannelSpec(0, 0, DRIVER, List.of(1), 10, 1 << 20, Transport.IN_PROCESS, local),
                    new ChannelSpec(1, 1, 1, List.of(2), 10, 1 << 20, Transport.AERON_UDP,
                            "AUTO: node-2/w2 is on another host than the writer (localhost)"),
                    new ChannelSpec(2, 2, 2, List.of(1), 10, 1 << 20, Transport.AERON_UDP,
                            "AUTO: localhost/driver is on another host than the writer (node-2)"),
                    new ChannelSpec(3, 3, 1, List.of(DRIVER), 10, 1 << 20, Transport.IN_PROCESS, local)),
                    plan.channels());
        }

        @Test
        void aFanOutWithOneReaderOnAnotherHostGoesOverUdpForEveryReader() {
            InputNode<String> in = Graph.input();
            Node<String> x = a.bind(Text::upper, in);
            Node<String> y = b.bind(Text::lower, in);
            Topology twoHosts = new Topology(ActorPlacement.IN_DRIVER,
                    Map.of(a.id(), ActorPlacement.IN_DRIVER, b.id(), new ActorPlacement("node-2", "w2")));
            ExecutionPlan plan = GraphCompiler.compile(Graph.outputs(x, y), twoHosts, OPTIONS);
            ChannelSpec input = plan.channels().get(0);
            assertEquals(List.of(1, 2), input.readers());
            assertEquals(Transport.AERON_UDP, input.transport());
        }

        @Test
        void sharedMemoryAskedAcrossHostsIsRefusedAndUdpMayBeAskedOnOneHost() {
            InputNode<String> in = Graph.input();
            Node<String> x = a.bind(Text::upper, in).withTransport(Transport.SHARED_MEMORY);
            Node<String> y = b.bind(Text::lower, x);
            Topology twoHosts = new Topology(ActorPlacement.IN_DRIVER,
                    Map.of(a.id(), ActorPlacement.IN_DRIVER, b.id(), new ActorPlacement("node-2", "w2")));
            GraphCompileException e = assertThrows(GraphCompileException.class,
                    () -> GraphCompiler.compile(y, twoHosts, OPTIONS));
            assertTrue(e.getMessage().contains("another host; use Transport.AUTO or AERON_UDP"), e.getMessage());

            InputNode<String> in2 = Graph.input();
            Node<String> u = c.bind(Text::upper, in2).withTransport(Transport.AERON_UDP);
            Node<String> v = d.bind(Text::lower, u);
            Topology oneHost = new Topology(ActorPlacement.IN_DRIVER,
                    Map.of(c.id(), ActorPlacement.IN_DRIVER, d.id(), new ActorPlacement("localhost", "w1")));
            ChannelSpec udp = GraphCompiler.compile(v, oneHost, OPTIONS).channels().get(1);
            assertEquals(Transport.AERON_UDP, udp.transport());
            assertEquals("asked; one host (localhost)", udp.reason());
        }

        @Test
        void readersInSeveralJvmsShareOneSharedMemoryChannel() {
            InputNode<String> in = Graph.input();
            Node<String> x = a.bind(Text::upper, in);
            Node<String> y = b.bind(Text::lower, in);
            Topology twoJvms = new Topology(ActorPlacement.IN_DRIVER,
                    Map.of(a.id(), ActorPlacement.IN_DRIVER, b.id(), new ActorPlacement("localhost", "w1")));
            ExecutionPlan plan = GraphCompiler.compile(Graph.outputs(x, y), twoJvms, OPTIONS);
            ChannelSpec input = plan.channels().get(0);
            assertEquals(List.of(1, 2), input.readers());
            assertEquals(Transport.SHARED_MEMORY, input.transport());
        }

        @Test
        void sharedMemoryAskedInOneJvm() {
            InputNode<String> in = Graph.input();
            Node<String> x = a.bind(Text::upper, in).withTransport(Transport.SHARED_MEMORY);
            Node<String> y = b.bind(Text::lower, x);
            ExecutionPlan plan = compile(y);
            assertEquals(Transport.SHARED_MEMORY, plan.channels().get(1).transport());
            assertEquals("asked; one JVM", plan.channels().get(1).reason());
            assertEquals(Transport.IN_PROCESS, plan.channels().get(2).transport());
        }

        @Test
        void chainAcrossTwoActors() {
            InputNode<String> in = Graph.input();
            Node<String> x = a.bind(Text::upper, in);
            Node<Integer> y = b.bind(Text::length, x);
            ExecutionPlan plan = compile(y);

            assertEquals(List.of(new NodeSpec(0, "input", DRIVER, List.of()),
                    new NodeSpec(1, "a.upper", 1, List.of(0)),
                    new NodeSpec(2, "b.length", 2, List.of(1))), plan.nodes());
            String auto = "AUTO: writer and readers in one JVM";
            assertEquals(List.of(new ChannelSpec(0, 0, DRIVER, List.of(1), 10, 1 << 20, Transport.IN_PROCESS, auto),
                    new ChannelSpec(1, 1, 1, List.of(2), 10, 1 << 20, Transport.IN_PROCESS, auto),
                    new ChannelSpec(2, 2, 2, List.of(DRIVER), 10, 1 << 20, Transport.IN_PROCESS, auto)), plan.channels());
            assertEquals(List.of(
                    new ActorSchedule(1, "a", ActorPlacement.IN_DRIVER, 2, List.of(new Read(0, 0, 0),
                            new Compute(1, x.method(), List.of(new InputArg(0, 0)), 1), new Write(1, 1))),
                    new ActorSchedule(2, "b", ActorPlacement.IN_DRIVER, 2, List.of(new Read(1, 0, 0),
                            new Compute(2, y.method(), List.of(new LocalArg(0)), 1), new Write(2, 1)))),
                    plan.schedules());
            assertEquals(List.of(new OutputRead(2, 0)), plan.outputs());
            assertEquals(1, plan.inputArity());
            assertEquals(10, plan.maxInflight());
            assertEquals(false, plan.multiOutput());
        }

        @Test
        void nodesInTopologicalOrder() {
            InputNode2<String, String> in = Graph.input2();
            Node<String> s1 = a.bind(Text::upper, in.second());
            Node<String> s0 = b.bind(Text::upper, in.first());
            Node<String> j = c.bind(Text::concat, s0, s1);
            Node<String> k = a.bind(Text::join3, j, s1, in.second());
            ExecutionPlan plan = compile(k);
            List<NodeSpec> nodes = plan.nodes();
            for (int i = 0; i < nodes.size(); i++) {
                assertEquals(i, nodes.get(i).id());
                for (int up : nodes.get(i).upstream()) {
                    assertTrue(up < i, () -> "node " + nodes.get(up) + " not before " + nodes.get(up));
                }
            }
            // A tuple input's components are made with it (one node each), so they come first; calls in bind order.
            assertEquals(List.of("input", "input[0]", "input[1]", "a.upper", "b.upper", "c.concat", "a.join3"),
                    nodes.stream().map(NodeSpec::label).toList());
            assertEquals(List.of(), nodes.get(1).upstream(), "an input argument is part of the input, not computed from it");
            assertEquals(List.of(5, 3, 2), nodes.get(6).upstream());
            assertEquals(DRIVER, nodes.get(1).actor());
            assertEquals(2, plan.inputArity());
        }

        @Test
        void sameActorThreeTimesRunsInBindOrderWithLocalEdges() {
            InputNode<String> in = Graph.input();
            Node<String> x1 = a.bind(Text::upper, in);
            Node<String> x2 = a.bind(Text::lower, x1);
            Node<String> x3 = a.bind(Text::concat, x2, x1);
            ExecutionPlan plan = compile(x3);

            assertEquals(2, plan.channels().size(), "the input and the output; edges inside a are locals");
            assertEquals(List.of(new ActorSchedule(1, "a", ActorPlacement.IN_DRIVER, 4, List.of(
                    new Read(0, 0, 0),
                    new Compute(1, x1.method(), List.of(new InputArg(0, 0)), 1),
                    new Compute(2, x2.method(), List.of(new LocalArg(1)), 2),
                    new Compute(3, x3.method(), List.of(new LocalArg(2), new LocalArg(1)), 3),
                    new Write(1, 3)))), plan.schedules());
        }

        @Test
        void sameActorThreeTimesAroundAnotherActor() {
            InputNode<String> in = Graph.input();
            Node<String> x1 = a.bind(Text::upper, in);
            Node<String> y = b.bind(Text::lower, x1);
            Node<String> x2 = a.bind(Text::concat, x1, y);
            Node<String> x3 = a.bind(Text::concat, x2, in);
            ExecutionPlan plan = compile(x3);

            // c0 input, c1 x1 (read by b), c2 y (read by a), c3 x3 (read by the driver)
            assertEquals(List.of(DRIVER, 1, 2, 1), plan.channels().stream().map(ChannelSpec::writer).toList());
            assertEquals(List.of(0, 1, 2, 4), plan.channels().stream().map(ChannelSpec::node).toList());
            assertEquals(List.of(List.of(1), List.of(2), List.of(1), List.of(DRIVER)),
                    plan.channels().stream().map(ChannelSpec::readers).toList());
            ActorSchedule sa = plan.schedules().get(0);
            assertEquals(List.of(
                    new Read(0, 0, 0),
                    new Compute(1, x1.method(), List.of(new InputArg(0, 0)), 1),
                    new Write(1, 1),
                    new Read(2, 0, 2),
                    new Compute(3, x2.method(), List.of(new LocalArg(1), new LocalArg(2)), 3),
                    new Compute(4, x3.method(), List.of(new LocalArg(3), new InputArg(0, 0)), 4),
                    new Write(3, 4)), sa.ops(), "the input is read once; calls in bind order");
            assertEquals(5, sa.frameSize());
            assertEquals(List.of(new Read(1, 0, 0), new Compute(2, y.method(), List.of(new LocalArg(0)), 1),
                    new Write(2, 1)), plan.schedules().get(1).ops());
        }

        @Test
        void nodeReadByTwoActorsHasOneChannelWithTwoReaders() {
            InputNode<String> in = Graph.input();
            Node<String> x = a.bind(Text::upper, in);
            Node<String> y = b.bind(Text::lower, x);
            Node<String> z = c.bind(Text::upper, x);
            Node<String> w = d.bind(Text::concat, y, z);
            ExecutionPlan plan = compile(w);

            List<ChannelSpec> ofX = plan.channels().stream().filter(ch -> ch.node() == 1).toList();
            assertEquals(1, ofX.size());
            ChannelSpec cx = ofX.get(0);
            assertEquals(a.id(), cx.writer());
            assertEquals(List.of(b.id(), c.id()), cx.readers());
            assertEquals(new Read(cx.id(), 0, 0), schedule(plan, b).ops().get(0));
            assertEquals(new Read(cx.id(), 1, 0), schedule(plan, c).ops().get(0));
            assertEquals(List.of(a.id(), b.id(), c.id(), d.id()),
                    plan.schedules().stream().map(ActorSchedule::actor).toList(), "schedules in order of first appearance");
            ActorSchedule sd = schedule(plan, d);
            assertEquals(List.of(new Read(channelOf(plan, y), 0, 0), new Read(channelOf(plan, 3), 0, 1),
                    new Compute(4, w.method(), List.of(new LocalArg(0), new LocalArg(1)), 2),
                    new Write(channelOf(plan, 4), 2)), sd.ops());
        }

        @Test
        void readerIndexFollowsFirstAppearanceNotBindOrderOfReads() {
            InputNode<String> in = Graph.input();
            Node<String> early = c.bind(Text::hello); // c appears first
            Node<String> x = a.bind(Text::upper, in);
            Node<String> y = b.bind(Text::lower, x);
            Node<String> z = c.bind(Text::concat, early, x);
            ExecutionPlan plan = compile(Graph.outputs(y, z));

            ChannelSpec cx = plan.channels().get(channelOf(plan, 2));
            assertEquals(List.of(c.id(), b.id()), cx.readers());
            assertEquals(new Read(cx.id(), 1, 0), schedule(plan, b).ops().get(0));
            assertTrue(schedule(plan, c).ops().contains(new Read(cx.id(), 0, 2)));
        }

        @Test
        void outputAlsoReadByAnotherActorIsOneChannelWithTheDriverAsAReader() {
            InputNode<String> in = Graph.input();
            Node<String> x = a.bind(Text::upper, in);
            Node<String> y = b.bind(Text::lower, x);
            ExecutionPlan plan = compile(Graph.outputs(x, y));

            assertEquals(3, plan.channels().size());
            ChannelSpec cx = plan.channels().get(1);
            assertEquals(1, cx.node());
            assertEquals(List.of(b.id(), DRIVER), cx.readers(), "the driver reads last");
            assertEquals(List.of(new OutputRead(1, 1), new OutputRead(2, 0)), plan.outputs());
            assertTrue(plan.multiOutput());
        }

        @Test
        void sameNodeTwiceAmongTheOutputs() {
            InputNode<String> in = Graph.input();
            Node<String> x = a.bind(Text::upper, in);
            Node<String> y = b.bind(Text::lower, x);
            ExecutionPlan plan = compile(Graph.outputs(y, x, y));

            assertEquals(List.of(DRIVER), plan.channels().get(2).readers());
            assertEquals(List.of(new OutputRead(2, 0), new OutputRead(1, 1), new OutputRead(2, 0)), plan.outputs());
            assertEquals(List.of(b.id(), DRIVER), plan.channels().get(1).readers());
            assertEquals(1, schedule(plan, a).ops().stream().filter(op -> op instanceof Write).count(),
                    "one write per value, whatever the number of readers");
        }

        @Test
        void callOnConstantsOnlyReadsTheInputChannelFirst() {
            Node<String> hello = a.bind(Text::hello);
            ExecutionPlan plan = compile(hello);

            assertEquals(0, plan.inputArity());
            assertEquals(List.of(new NodeSpec(0, "a.hello", 1, List.of())), plan.nodes());
            assertEquals(new ChannelSpec(0, -1, DRIVER, List.of(1), 10, 1 << 20, Transport.IN_PROCESS,
                    "AUTO: writer and readers in one JVM"), plan.channels().get(0));
            assertEquals(List.of(new Read(0, 0, 0), new Compute(0, hello.method(), List.of(), 1), new Write(1, 1)),
                    plan.schedules().get(0).ops());
        }

        @Test
        void callWithConstantArgumentsReadsTheInputChannelFirst() {
            Node<String> s = a.bind(Text::repeat, Graph.constant("ab"), Graph.constant(3));
            ExecutionPlan plan = compile(s);
            assertEquals(List.of(new Read(0, 0, 0),
                    new Compute(0, s.method(), List.of(new ConstantArg("ab"), new ConstantArg(3)), 1),
                    new Write(1, 1)), plan.schedules().get(0).ops());
        }

        @Test
        void actorStartingWithAConstantCallJoinsTheInputReaders() {
            InputNode<String> in = Graph.input();
            Node<String> x = a.bind(Text::upper, in);
            Node<String> h = b.bind(Text::hello);
            Node<String> out = a.bind(Text::concat, x, h);
            ExecutionPlan plan = compile(out);

            assertEquals(List.of(a.id(), b.id()), plan.channels().get(0).readers());
            assertEquals(List.of(new Read(0, 1, 0), new Compute(2, h.method(), List.of(), 1), new Write(1, 1)),
                    schedule(plan, b).ops());
        }

        @Test
        void constantCallAfterOtherCallsOfTheSameActorReadsNothingMore() {
            InputNode<String> in = Graph.input();
            Node<String> x = a.bind(Text::upper, in);
            Node<String> h = a.bind(Text::hello);
            ExecutionPlan plan = compile(Graph.outputs(x, h));
            assertEquals(List.of(new Read(0, 0, 0), new Compute(1, x.method(), List.of(new InputArg(0, 0)), 1),
                    new Write(1, 1), new Compute(2, h.method(), List.of(), 2), new Write(2, 2)),
                    plan.schedules().get(0).ops());
        }

        @Test
        void inputArity() {
            InputNode<String> whole = Graph.input();
            assertEquals(1, compile(a.bind(Text::upper, whole)).inputArity());

            InputNode3<String, String, String> args = Graph.input3();
            ExecutionPlan three = compile(a.bind(Text::join3, args.third(), args.first(), args.second()));
            assertEquals(3, three.inputArity());
            Compute compute = (Compute) three.schedules().get(0).ops().get(1);
            assertEquals(List.of(new InputArg(0, 2), new InputArg(0, 0), new InputArg(0, 1)), compute.args());

            assertEquals(0, compile(a.bind(Text::hello)).inputArity());
        }

        @Test
        void slotsAndSlotBytesComeFromTheOptions() {
            InputNode<String> in = Graph.input();
            Node<String> y = b.bind(Text::lower, a.bind(Text::upper, in));
            ExecutionPlan plan = GraphCompiler.compile(y, all, OPTIONS.maxInflight(3).bufferBytes(4096));
            assertEquals(3, plan.maxInflight());
            for (ChannelSpec ch : plan.channels()) {
                assertAll(() -> assertEquals(3, ch.slots()), () -> assertEquals(4096, ch.slotBytes()));
            }
        }

        @Test
        void askedTransportIsRecorded() {
            InputNode<String> in = Graph.input();
            Node<String> x = a.bind(Text::upper, in).withTransport(Transport.IN_PROCESS);
            Node<String> y = b.bind(Text::lower, x);
            ExecutionPlan plan = compile(y);
            assertEquals("asked; one JVM", plan.channels().get(1).reason());
            assertEquals(Transport.IN_PROCESS, plan.channels().get(1).transport());
            assertEquals("AUTO: writer and readers in one JVM", plan.channels().get(2).reason());
        }

        @Test
        void sameNodeTwiceAsArgumentsIsReadOnce() {
            InputNode<String> in = Graph.input();
            Node<String> x = a.bind(Text::upper, in);
            Node<String> y = b.bind(Text::concat, x, x);
            ExecutionPlan plan = compile(y);
            assertEquals(List.of(new Read(1, 0, 0), new Compute(2, y.method(), List.of(new LocalArg(0), new LocalArg(0)), 1),
                    new Write(2, 1)), schedule(plan, b).ops());
            assertEquals(List.of(1, 1), plan.nodes().get(2).upstream());
        }

        @Test
        void everyReadHasAWriterAndEveryChannelAReader() {
            InputNode2<String, String> in = Graph.input2();
            Node<String> x = a.bind(Text::upper, in.first());
            Node<String> y = b.bind(Text::concat, x, in.second());
            Node<String> z = c.bind(Text::join3, x, y, Graph.constant("!"));
            Node<String> w = a.bind(Text::concat, z, b.bind(Text::hello));
            ExecutionPlan plan = compile(Graph.outputs(w, y));
            for (ChannelSpec ch : plan.channels()) {
                assertTrue(!ch.readers().isEmpty(), ch::toString);
                for (int i = 0; i < ch.readers().size(); i++) {
                    int reader = ch.readers().get(i);
                    int index = i;
                    if (reader == DRIVER) {
                        assertTrue(plan.outputs().contains(new OutputRead(ch.id(), index)), ch::toString);
                    } else {
                        assertTrue(schedule(plan, reader).ops().stream().anyMatch(op -> op instanceof Read r
                                && r.channel() == ch.id() && r.reader() == index), ch::toString);
                    }
                }
                if (ch.writer() != DRIVER) {
                    assertEquals(1, schedule(plan, ch.writer()).ops().stream()
                            .filter(op -> op instanceof Write wr && wr.channel() == ch.id()).count(), ch::toString);
                }
            }
        }
    }

    private static ActorSchedule schedule(ExecutionPlan plan, ActorRef<?> actor) {
        return schedule(plan, actor.id());
    }

    private static ActorSchedule schedule(ExecutionPlan plan, int actor) {
        return plan.schedules().stream().filter(s -> s.actor() == actor).findFirst().orElseThrow();
    }

    private static int channelOf(ExecutionPlan plan, int node) {
        return plan.channels().stream().filter(ch -> ch.node() == node).findFirst().orElseThrow().id();
    }

    private static int channelOf(ExecutionPlan plan, Node<?> node) {
        int id = plan.nodes().stream().filter(s -> s.label().equals(node.label())).findFirst().orElseThrow().id();
        return channelOf(plan, id);
    }
}
