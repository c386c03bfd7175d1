package dev.kiln.executor.wire;

import dev.kiln.graph.Method1;
import dev.kiln.tensor.Tensor;

import java.util.Arrays;
import java.util.Locale;

/** Actor classes and values shared by the wire tests. */
final class WireActors {

    private WireActors() {
    }

    /** An actor on strings; every method gives a different result for the same input. */
    static class Text {
        String upper(String s) {
            return s.toUpperCase(Locale.ROOT);
        }

        String lower(String s) {
            return s.toLowerCase(Locale.ROOT);
        }

        String concat(String a, String b) {
            return a + "+" + b;
        }

        String join3(String a, String b, String c) {
            return a + "|" + b + "|" + c;
        }

        String repeat(String s, Integer times) {
            return s.repeat(times);
        }

        Integer length(String s) {
            return s.length();
        }

        /** Describes each argument with its class, so a constant of the wrong type shows. */
        String describe(Object a, Object b, Object c, Object d, Object e, Object f, Object g, Object h) {
            StringBuilder sb = new StringBuilder();
            for (Object o : new Object[] {a, b, c, d, e, f, g, h}) {
                sb.append(WireActors.describe(o)).append(';');
            }
            return sb.toString();
        }
    }

    /** An actor with an overloaded method. */
    static final class Over {
        String fmt(String s) {
            return "string " + s;
        }

        String fmt(Integer i) {
            return "int " + i;
        }

        String fmt(Object o) {
            return "object " + describe(o);
        }

        String fmt(String s, Integer i) {
            return "string+int " + s + i;
        }
    }

    /** An actor of GPU methods, for plans with GPU edges (never run). */
    static final class Dev {
        public dev.kiln.tensor.DeviceTensor make(String s) {
            return null;
        }

        public dev.kiln.tensor.DeviceTensor pass(dev.kiln.tensor.DeviceTensor t) {
            return t;
        }

        public String show(Object t) {
            return String.valueOf(t);
        }

        public String label(String s) {
            return s;
        }
    }

    /** A user class, sent through the codec once registered. */
    record Config(int n, String name) {
    }

    /** A class nobody registers. */
    record Secret(int x) {
    }

    /** An actor whose factory captures values. */
    record Foo(int n, String s) {
    }

    /** A plain class implementing a method: no state, a no-arg constructor. */
    static final class UpperFn implements Method1<Text, String, String> {
        private static final long serialVersionUID = 1L;

        @Override
        public String apply(Text actor, String s) {
            return actor.upper(s) + "!";
        }
    }

    /** A plain class with state: cannot be sent by name. */
    static final class PrefixFn implements Method1<Text, String, String> {
        private static final long serialVersionUID = 1L;
        private final String prefix;

        PrefixFn(String prefix) {
            this.prefix = prefix;
        }

        @Override
        public String apply(Text actor, String s) {
            return prefix + s;
        }
    }

    /** A plain class without a no-arg constructor. */
    static final class NoDefaultFn implements Method1<Text, String, String> {
        private static final long serialVersionUID = 1L;

        NoDefaultFn(int ignored) {
        }

        @Override
        public String apply(Text actor, String s) {
            return s;
        }
    }

    /**
     * @param value any value
     * @return its class and content, arrays and tensors by content
     */
    static String describe(Object value) {
        return switch (value) {
            case null -> "null";
            case byte[] b -> "byte[]" + Arrays.toString(b);
            case Tensor t -> t.dtype() + Arrays.toString(t.shape()) + Arrays.toString(t.data().toArray(
                    java.lang.foreign.ValueLayout.JAVA_BYTE));
            case Object[] a -> "Object[]" + Arrays.stream(a).map(WireActors::describe).toList();
            default -> value.getClass().getSimpleName() + ":" + value;
        };
    }
}
