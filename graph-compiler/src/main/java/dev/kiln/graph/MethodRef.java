package dev.kiln.graph;

import java.io.Serializable;
import java.lang.invoke.MethodType;
import java.lang.invoke.SerializedLambda;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.List;

/**
 * An actor method resolved by reflection: the callable function object plus its name and
 * the types Kiln checks at compile time.
 *
 * @param function       the {@code Method0..Method8} instance the user bound; called on the actor's thread
 * @param arity          number of arguments, not counting the actor
 * @param owner          simple name of the class that declares the implementation ({@code Main$1} if anonymous)
 * @param name           the implementation method's name ({@code lambda$...} for a lambda)
 * @param parameterTypes the argument types as the function receives them (boxed)
 * @param primitive      for each argument, whether the implementation takes a primitive (so null is illegal)
 * @param returnType     the result type (boxed; {@code Void} for void methods)
 */
public record MethodRef(Serializable function, int arity, String owner, String name,
                        List<Class<?>> parameterTypes, List<Boolean> primitive, Class<?> returnType) {

    /**
     * Resolves a bound method.
     *
     * @param function a {@code Method0..Method8} instance
     * @param arity    its number of arguments, not counting the actor
     * @return the resolved method
     * @throws IllegalArgumentException if the method cannot be resolved (never for a lambda or method reference)
     */
    public static MethodRef of(Serializable function, int arity) {
        SerializedLambda lambda = serializedForm(function);
        if (lambda == null) {
            return ofClass(function, arity);
        }
        ClassLoader loader = function.getClass().getClassLoader();
        MethodType instantiated = MethodType.fromMethodDescriptorString(lambda.getInstantiatedMethodType(), loader);
        MethodType impl = MethodType.fromMethodDescriptorString(lambda.getImplMethodSignature(), loader);
        if (instantiated.parameterCount() != arity + 1) {
            throw new IllegalArgumentException("method " + lambda.getImplMethodName() + " takes "
                    + (instantiated.parameterCount() - 1) + " arguments, expected " + arity);
        }
        Class<?>[] params = new Class<?>[arity];
        Boolean[] primitive = new Boolean[arity];
        // The implementation's trailing parameters line up with the function's arguments
        // (a virtual method reference has no receiver parameter, a lambda has captures first).
        int implOffset = impl.parameterCount() - arity;
        for (int i = 0; i < arity; i++) {
            params[i] = box(instantiated.parameterType(i + 1));
            primitive[i] = implOffset + i >= 0 && impl.parameterType(implOffset + i).isPrimitive();
        }
        return new MethodRef(function, arity, implOwner(lambda, loader), lambda.getImplMethodName(),
                List.of(params), List.of(primitive), box(instantiated.returnType()));
    }

    /**
     * Calls a bound method.
     *
     * @param function a {@code Method0..Method8} instance
     * @param arity    its number of arguments
     * @param actor    the actor instance
     * @param args     the arguments (at least {@code arity} elements; extra ones are ignored)
     * @return the method's result
     * @throws Exception whatever the method throws
     */
    @SuppressWarnings({"unchecked", "rawtypes"})
    public static Object invoke(Serializable function, int arity, Object actor, Object[] args) throws Exception {
        return switch (arity) {
            case 0 -> ((Method0) function).apply(actor);
            case 1 -> ((Method1) function).apply(actor, args[0]);
            case 2 -> ((Method2) function).apply(actor, args[0], args[1]);
            case 3 -> ((Method3) function).apply(actor, args[0], args[1], args[2]);
            case 4 -> ((Method4) function).apply(actor, args[0], args[1], args[2], args[3]);
            case 5 -> ((Method5) function).apply(actor, args[0], args[1], args[2], args[3], args[4]);
            case 6 -> ((Method6) function).apply(actor, args[0], args[1], args[2], args[3], args[4], args[5]);
            case 7 -> ((Method7) function).apply(actor, args[0], args[1], args[2], args[3], args[4], args[5], args[6]);
            default -> ((Method8) function).apply(actor, args[0], args[1], args[2], args[3], args[4], args[5], args[6], args[7]);
        };
    }

    /** {@return the name shown in plans and errors, e.g. {@code Model.forward}} */
    public String displayName() {
        return owner + "." + name;
    }

    private static SerializedLambda serializedForm(Serializable function) {
        try {
            Method writeReplace = function.getClass().getDeclaredMethod("writeReplace");
            writeReplace.setAccessible(true);
            return writeReplace.invoke(function) instanceof SerializedLambda form ? form : null;
        } catch (NoSuchMethodException e) {
            return null;
        } catch (java.lang.reflect.InaccessibleObjectException e) {
            Class<?> c = function.getClass();
            throw new IllegalArgumentException("cannot resolve method " + c.getName() + ": module "
                    + c.getModule().getName() + " does not open package " + c.getPackageName() + " to Kiln; add `opens "
                    + c.getPackageName() + " to dev.kiln.graphcompiler, dev.kiln.executor;` to its module-info.java", e);
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new IllegalArgumentException("cannot resolve method " + function.getClass().getName()
                    + ": " + e, e);
        }
    }

    /** A plain class implementing MethodN: read the types of its non-bridge {@code apply}, declared or inherited. */
    private static MethodRef ofClass(Serializable function, int arity) {
        for (Class<?> c = function.getClass(); c != null; c = c.getSuperclass()) {
            for (Method m : c.getDeclaredMethods()) {
                if (m.getName().equals("apply") && !m.isBridge() && !Modifier.isStatic(m.getModifiers())
                        && m.getParameterCount() == arity + 1) {
                    Class<?>[] params = new Class<?>[arity];
                    Boolean[] primitive = new Boolean[arity];
                    for (int i = 0; i < arity; i++) {
                        params[i] = box(m.getParameterTypes()[i + 1]);
                        primitive[i] = false; // apply receives references; a null reaches the user's code
                    }
                    return new MethodRef(function, arity, simpleName(c), "apply",
                            List.of(params), List.of(primitive), box(m.getReturnType()));
                }
            }
        }
        throw new IllegalArgumentException("cannot resolve method of " + function.getClass().getName());
    }

    private static String implOwner(SerializedLambda lambda, ClassLoader loader) {
        String implClass = lambda.getImplClass().replace('/', '.');
        try {
            return simpleName(Class.forName(implClass, false, loader));
        } catch (ClassNotFoundException e) {
            return implClass.substring(implClass.lastIndexOf('.') + 1); // not loadable by name (a hidden class)
        }
    }

    /** The simple name, or for an anonymous class the binary name without its package (e.g. {@code Main$1}). */
    private static String simpleName(Class<?> type) {
        String simple = type.getSimpleName();
        return simple.isEmpty() ? type.getName().substring(type.getName().lastIndexOf('.') + 1) : simple;
    }

    /**
     * The wrapper class of a primitive type, {@code Void} for {@code void}, else the type itself.
     *
     * @param type any class
     * @return its boxed form
     */
    public static Class<?> box(Class<?> type) {
        if (!type.isPrimitive()) {
            return type;
        }
        return MethodType.methodType(type).wrap().returnType();
    }
}
