package dev.kiln.graph;

import dev.kiln.graph.internal.GraphInternals;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.Serial;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(30)
class MethodRefTest {

    static final class Calc {
        int inc(int x) {
            return x + 1;
        }

        Integer boxed(Integer x) {
            return x;
        }

        String scale(String s, long factor) {
            return s + factor;
        }

        double mix(int a, Double b, boolean c) {
            return c ? a : b;
        }

        long now() {
            return 42L;
        }

        void reset() {
        }
    }

    static int twice(Calc calc, int x) {
        return 2 * x;
    }

    /** A named implementation class, to check that an inherited {@code apply} is found. */
    static class Doubler implements Method1<Calc, Integer, Long> {
        @Serial
        private static final long serialVersionUID = 1L;

        @Override
        public Long apply(Calc actor, Integer x) {
            return 2L * x;
        }
    }

    static final class QuietDoubler extends Doubler {
        @Serial
        private static final long serialVersionUID = 1L;
    }

    @Test
    void methodReference() {
        Method1<Calc, Integer, Integer> fn = Calc::inc;
        MethodRef m = MethodRef.of(fn, 1);
        assertSame(fn, m.function());
        assertEquals(1, m.arity());
        assertEquals("Calc", m.owner(), "the simple name, not MethodRefTest$Calc");
        assertEquals("inc", m.name());
        assertEquals("Calc.inc", m.displayName());
        assertEquals(List.of(Integer.class), m.parameterTypes());
        assertEquals(List.of(true), m.primitive());
        assertEquals(Integer.class, m.returnType());
    }

    @Test
    void methodReferenceWithReferenceParameter() {
        MethodRef m = MethodRef.of((Method1<Calc, Integer, Integer>) Calc::boxed, 1);
        assertEquals(List.of(Integer.class), m.parameterTypes());
        assertEquals(List.of(false), m.primitive());
    }

    @Test
    void staticMethodReferenceTakingTheActorFirst() {
        MethodRef m = MethodRef.of((Method1<Calc, Integer, Integer>) MethodRefTest::twice, 1);
        assertEquals("MethodRefTest.twice", m.displayName());
        assertEquals(List.of(Integer.class), m.parameterTypes());
        assertEquals(List.of(true), m.primitive());
        assertEquals(Integer.class, m.returnType());
    }

    @Test
    void lambda() {
        Method1<Calc, Integer, Integer> fn = (calc, x) -> calc.inc(x);
        MethodRef m = MethodRef.of(fn, 1);
        assertSame(fn, m.function());
        assertEquals("MethodRefTest", m.owner());
        assertTrue(m.name().startsWith("lambda$"), m.name());
        assertEquals(List.of(Integer.class), m.parameterTypes());
        assertEquals(List.of(false), m.primitive(), "a lambda receives its arguments boxed: null reaches it");
        assertEquals(Integer.class, m.returnType());
    }

    @Test
    void lambdaWithCapturedVariable() {
        int offset = Integer.parseInt("7");
        String suffix = "!";
        Method2<Calc, Integer, String, String> fn = (calc, x, s) -> calc.inc(x + offset) + s + suffix;
        MethodRef m = MethodRef.of(fn, 2);
        assertSame(fn, m.function());
        assertEquals(2, m.arity());
        assertEquals(List.of(Integer.class, String.class), m.parameterTypes(), "captures are not parameters");
        assertEquals(List.of(false, false), m.primitive());
        assertEquals(String.class, m.returnType());
    }

    @Test
    void lambdaCapturingThis() {
        Method1<Calc, Integer, String> fn = (calc, x) -> this.getClass().getSimpleName() + x;
        MethodRef m = MethodRef.of(fn, 1);
        assertEquals(List.of(Integer.class), m.parameterTypes());
        assertEquals(List.of(false), m.primitive());
    }

    @Test
    void anonymousClass() {
        Method1<Calc, Integer, String> fn = new Method1<>() {
            @Serial
            private static final long serialVersionUID = 1L;

            @Override
            public String apply(Calc actor, Integer x) {
                return "x" + x;
            }
        };
        MethodRef m = MethodRef.of(fn, 1);
        assertSame(fn, m.function());
        assertEquals("apply", m.name());
        assertTrue(m.owner().matches("MethodRefTest\\$\\d+"), m.owner());
        assertEquals(m.owner() + ".apply", m.displayName());
        assertEquals(List.of(Integer.class), m.parameterTypes());
        assertEquals(List.of(false), m.primitive());
        assertEquals(String.class, m.returnType());
    }

    @Test
    void namedClassAndInheritedApply() {
        MethodRef named = MethodRef.of(new Doubler(), 1);
        assertEquals("Doubler.apply", named.displayName());
        assertEquals(List.of(Integer.class), named.parameterTypes());
        assertEquals(Long.class, named.returnType());

        MethodRef inherited = MethodRef.of(new QuietDoubler(), 1);
        assertEquals("Doubler.apply", inherited.displayName(), "the class that declares apply");
        assertEquals(List.of(Integer.class), inherited.parameterTypes());
        assertEquals(Long.class, inherited.returnType());
    }

    @Test
    void primitiveParametersAndResultAreBoxed() {
        MethodRef two = MethodRef.of((Method2<Calc, String, Long, String>) Calc::scale, 2);
        assertEquals(List.of(String.class, Long.class), two.parameterTypes());
        assertEquals(List.of(false, true), two.primitive());

        MethodRef three = MethodRef.of((Method3<Calc, Integer, Double, Boolean, Double>) Calc::mix, 3);
        assertEquals(List.of(Integer.class, Double.class, Boolean.class), three.parameterTypes());
        assertEquals(List.of(true, false, true), three.primitive());
        assertEquals(Double.class, three.returnType());

        MethodRef none = MethodRef.of((Method0<Calc, Long>) Calc::now, 0);
        assertEquals(List.of(), none.parameterTypes());
        assertEquals(List.of(), none.primitive());
        assertEquals(Long.class, none.returnType());
    }

    @Test
    void voidResult() {
        Method0<Calc, Void> fn = calc -> {
            calc.reset();
            return null;
        };
        assertEquals(Void.class, MethodRef.of(fn, 0).returnType());
        assertEquals(Void.class, MethodRef.box(void.class));
    }

    @Test
    void box() {
        assertEquals(Integer.class, MethodRef.box(int.class));
        assertEquals(Long.class, MethodRef.box(long.class));
        assertEquals(Boolean.class, MethodRef.box(boolean.class));
        assertEquals(Character.class, MethodRef.box(char.class));
        assertEquals(String.class, MethodRef.box(String.class));
        assertEquals(int[].class, MethodRef.box(int[].class));
    }

    @Test
    void wrongArityIsRejected() {
        Method1<Calc, Integer, Integer> fn = Calc::inc;
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> MethodRef.of(fn, 2));
        assertEquals("method inc takes 1 arguments, expected 2", e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> MethodRef.of(new Doubler(), 2));
    }

    @Test
    void bindResolvesTheMethodAndNullMethodIsRejected() {
        ActorRef<Calc> calc = GraphInternals.actorRef(1, "calc", Calc.class, "runtime");
        Method1<Calc, Integer, Integer> fn = Calc::inc;
        Node<Integer> node = calc.bind(fn, Graph.constant(3));
        assertSame(fn, node.method().function());
        assertEquals("calc.inc", node.label());
        assertEquals(List.of(3), node.args());
        assertThrows(NullPointerException.class,
                () -> calc.bind((Method1<Calc, Integer, Integer>) null, Graph.constant(3)));
    }
}
