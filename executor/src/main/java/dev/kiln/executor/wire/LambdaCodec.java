package dev.kiln.executor.wire;

import dev.kiln.ActorFactory;
import dev.kiln.graph.Method0;
import dev.kiln.graph.Method1;
import dev.kiln.graph.Method2;
import dev.kiln.graph.Method3;
import dev.kiln.graph.Method4;
import dev.kiln.graph.Method5;
import dev.kiln.graph.Method6;
import dev.kiln.graph.Method7;
import dev.kiln.graph.Method8;
import dev.kiln.tensor.Tensor;
import dev.kiln.transport.ValueCodec;

import java.io.Serializable;
import java.lang.invoke.CallSite;
import java.lang.invoke.LambdaMetafactory;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandleInfo;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.invoke.SerializedLambda;
import java.lang.reflect.Constructor;
import java.lang.reflect.Field;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.List;

/**
 * Sends a serializable function (an {@code ActorFactory}, a {@code Method0..Method8}) to another
 * JVM without Java object serialization.
 *
 * <p>A lambda or method reference travels as the fields of its {@link SerializedLambda}, its
 * captured values through the {@link ValueCodec}. The reader builds a {@code SerializedLambda}
 * with its public constructor and calls the capturing class's {@code $deserializeLambda$}, as
 * {@code SerializedLambda.readResolve} would: only a lambda that the capturing class itself
 * compiled as serializable can come out. Both JVMs need the same build of the capturing class.
 *
 * <p>A plain class that implements {@code ActorFactory} or {@code Method0..Method8} travels as its
 * name, if it has a no-arg constructor (of any access) and no instance fields; the reader creates
 * a new instance.
 *
 * <p>Stateless and thread-safe.
 */
public final class LambdaCodec {

    private static final int LAMBDA = 1;
    private static final int CLASS = 2;
    /** The interfaces a plain class must implement to be sent; all extend Serializable. */
    private static final List<Class<?>> FUNCTION_TYPES = List.of(ActorFactory.class, Method0.class, Method1.class,
            Method2.class, Method3.class, Method4.class, Method5.class, Method6.class, Method7.class, Method8.class);
    private static final String PLAIN_CLASS_FIX = "; a function sent to another process must be a lambda, a method"
            + " reference, or an instance of a class with a no-arg constructor and no instance fields";

    private LambdaCodec() {
    }

    /**
     * Writes a function.
     *
     * @param out      the message
     * @param function a lambda, a method reference, or an instance of a class with a no-arg constructor and
     *                 no instance fields
     * @param codec    encodes the lambda's captured values; the reader needs the same registrations
     * @throws IllegalArgumentException naming the lambda (implementation class and method) and the fix, if a
     *                                  captured value's class is not encodable, or the function is an instance of
     *                                  a class with instance fields or without a no-arg constructor; the content of
     *                                  {@code out} is then unspecified
     */
    public static void write(WireOut out, Serializable function, ValueCodec codec) {
        SerializedLambda lambda = serializedForm(function);
        if (lambda == null) {
            Class<?> type = function.getClass();
            String problem = plainClassProblem(type);
            if (problem != null) {
                throw new IllegalArgumentException("cannot send " + type.getName() + " to another process: " + problem
                        + PLAIN_CLASS_FIX);
            }
            out.writeInt(CLASS);
            out.writeString(type.getName());
            return;
        }
        out.writeInt(LAMBDA);
        out.writeString(lambda.getCapturingClass());
        out.writeString(lambda.getFunctionalInterfaceClass());
        out.writeString(lambda.getFunctionalInterfaceMethodName());
        out.writeString(lambda.getFunctionalInterfaceMethodSignature());
        out.writeInt(lambda.getImplMethodKind());
        out.writeString(lambda.getImplClass());
        out.writeString(lambda.getImplMethodName());
        out.writeString(lambda.getImplMethodSignature());
        out.writeString(lambda.getInstantiatedMethodType());
        out.writeInt(lambda.getCapturedArgCount());
        for (int i = 0; i < lambda.getCapturedArgCount(); i++) {
            Object captured = lambda.getCapturedArg(i);
            try {
                out.writeValue(codec, captured);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("cannot send " + describe(lambda) + " to another process: its"
                        + " captured value " + i + " (" + captured.getClass().getName() + ") cannot be encoded: "
                        + e.getMessage() + ". Fix: register that class with the codec in every process, or capture"
                        + " only primitives, strings, byte[] and tensors (a lambda in an instance method that uses a"
                        + " field captures 'this': copy the field to a local first)", e);
            }
        }
    }

    /**
     * Reads a function written by {@link #write}.
     *
     * @param in     the message
     * @param codec  decodes captured values; needs the writer's registrations
     * @param loader loads the capturing class (or the plain class)
     * @return the function, ready to call; captured tensors own their memory
     * @throws IllegalArgumentException if the message is truncated or corrupt, the class cannot be found, it
     *                                  declares no serializable lambda matching the message, or a plain class
     *                                  cannot be instantiated
     */
    public static Serializable read(WireIn in, ValueCodec codec, ClassLoader loader) {
        int kind = in.readInt();
        return switch (kind) {
            case LAMBDA -> readLambda(in, codec, loader);
            case CLASS -> readPlainClass(in.readString(), loader);
            default -> throw new IllegalArgumentException("corrupt wire message: unknown function kind " + kind);
        };
    }

    private static Serializable readLambda(WireIn in, ValueCodec codec, ClassLoader loader) {
        String capturingClass = required(in.readString(), "capturing class");
        String interfaceClass = required(in.readString(), "functional interface class");
        String interfaceMethod = required(in.readString(), "functional interface method");
        String interfaceSignature = required(in.readString(), "functional interface signature");
        int implKind = in.readInt();
        String implClass = required(in.readString(), "implementation class");
        String implMethod = required(in.readString(), "implementation method");
        String implSignature = required(in.readString(), "implementation signature");
        String instantiatedType = required(in.readString(), "instantiated method type");
        int count = in.readInt();
        if (count < 0 || count > in.remaining()) {
            throw new IllegalArgumentException("corrupt wire message: " + count + " captured values with "
                    + in.remaining() + " bytes left");
        }
        Object[] captured = new Object[count];
        for (int i = 0; i < count; i++) {
            captured[i] = in.readValue(codec);
        }
        String name = implClass.replace('/', '.') + "." + implMethod;
        try {
            Class<?> capturing = load(capturingClass.replace('/', '.'), loader, "lambda " + name);
            SerializedLambda form = new SerializedLambda(capturing, interfaceClass, interfaceMethod,
                    interfaceSignature, implKind, implClass, implMethod, implSignature, instantiatedType, captured);
            return retyped(capturing, form, deserialize(capturing, form, name), name);
        } catch (IllegalArgumentException e) {
            for (Object value : captured) {
                if (value instanceof Tensor t) {
                    t.close(); // copied out of the message for a lambda that will not exist
                }
            }
            throw e;
        }
    }

    /**
     * The rebuilt lambda, enforcing the types the sender's lambda enforced. A class's {@code $deserializeLambda$}
     * matches a lambda by its implementation method and interface, not by the types javac instantiated it at: when
     * the class uses one method reference at two types (say {@code Dev::show} of a {@code show(Object)}, once on a
     * {@code Node<Tensor>} and once on a {@code Node<DeviceTensor>}), it returns the first, whose call would cast
     * the other's arguments and fail. Then the lambda is made again with the sender's instantiated type, from the
     * implementation method {@code $deserializeLambda$} just vouched for (the class declares a serializable lambda
     * of it); the metafactory checks that the type fits that method.
     */
    private static Serializable retyped(Class<?> capturing, SerializedLambda form, Serializable rebuilt,
                                        String name) {
        SerializedLambda got = serializedForm(rebuilt);
        if (got == null || got.getInstantiatedMethodType().equals(form.getInstantiatedMethodType())) {
            return rebuilt;
        }
        try {
            ClassLoader loader = capturing.getClassLoader();
            MethodHandles.Lookup lookup = MethodHandles.privateLookupIn(capturing, MethodHandles.lookup());
            Class<?> implClass = Class.forName(form.getImplClass().replace('/', '.'), false, loader);
            MethodType implType = MethodType.fromMethodDescriptorString(form.getImplMethodSignature(), loader);
            String implName = form.getImplMethodName();
            MethodHandle impl = switch (form.getImplMethodKind()) {
                case MethodHandleInfo.REF_invokeStatic -> lookup.findStatic(implClass, implName, implType);
                case MethodHandleInfo.REF_invokeVirtual, MethodHandleInfo.REF_invokeInterface ->
                        lookup.findVirtual(implClass, implName, implType);
                case MethodHandleInfo.REF_invokeSpecial -> lookup.findSpecial(implClass, implName, implType, capturing);
                case MethodHandleInfo.REF_newInvokeSpecial -> lookup.findConstructor(implClass, implType);
                default -> throw new IllegalArgumentException("implementation kind " + form.getImplMethodKind());
            };
            Object[] captured = new Object[form.getCapturedArgCount()];
            for (int i = 0; i < captured.length; i++) {
                captured[i] = form.getCapturedArg(i);
            }
            Class<?> functional = Class.forName(form.getFunctionalInterfaceClass().replace('/', '.'), false, loader);
            MethodType capture = MethodType.methodType(functional,
                    impl.type().parameterList().subList(0, captured.length));
            CallSite site = LambdaMetafactory.altMetafactory(lookup, form.getFunctionalInterfaceMethodName(), capture,
                    MethodType.fromMethodDescriptorString(form.getFunctionalInterfaceMethodSignature(), loader),
                    impl, MethodType.fromMethodDescriptorString(form.getInstantiatedMethodType(), loader),
                    LambdaMetafactory.FLAG_SERIALIZABLE);
            return (Serializable) site.getTarget().invokeWithArguments(captured);
        } catch (Throwable e) {
            throw new IllegalArgumentException("cannot rebuild lambda " + name + " at its sender's types "
                    + form.getInstantiatedMethodType() + " (" + capturing.getName() + "'s $deserializeLambda$ gave "
                    + got.getInstantiatedMethodType() + "): " + e, e);
        }
    }

    /** Does what {@code SerializedLambda.readResolve} does, without an object stream. */
    private static Serializable deserialize(Class<?> capturing, SerializedLambda form, String name) {
        Method deserialize;
        try {
            deserialize = capturing.getDeclaredMethod("$deserializeLambda$", SerializedLambda.class);
            deserialize.setAccessible(true);
        } catch (NoSuchMethodException e) {
            throw new IllegalArgumentException("cannot rebuild lambda " + name + ": " + capturing.getName()
                    + " has no $deserializeLambda$ (it declares no serializable lambda); is this process running"
                    + " the same build of it as the sender?", e);
        } catch (RuntimeException e) {
            throw new IllegalArgumentException("cannot rebuild lambda " + name + ": " + e, e);
        }
        Object function;
        try {
            function = deserialize.invoke(null, form);
        } catch (InvocationTargetException e) {
            // $deserializeLambda$ throws IllegalArgumentException when none of the class's lambdas matches.
            String why = e.getCause() instanceof IllegalArgumentException
                    ? capturing.getName() + " declares no serializable lambda that matches it"
                    : "$deserializeLambda$ threw " + e.getCause();
            throw new IllegalArgumentException("cannot rebuild lambda " + name + " " + form.getImplMethodSignature()
                    + " as " + form.getFunctionalInterfaceClass().replace('/', '.') + ": " + why + "; is this process"
                    + " running the same build of " + capturing.getName() + " as the sender?", e.getCause());
        } catch (IllegalAccessException | ExceptionInInitializerError e) {
            throw new IllegalArgumentException("cannot rebuild lambda " + name + ": " + e, e);
        }
        if (!(function instanceof Serializable result)) {
            throw new IllegalArgumentException("cannot rebuild lambda " + name + ": $deserializeLambda$ returned "
                    + function);
        }
        return result;
    }

    private static Serializable readPlainClass(String className, ClassLoader loader) {
        Class<?> type = load(required(className, "class name"), loader, "function class " + className);
        String problem = plainClassProblem(type);
        if (problem != null) {
            throw new IllegalArgumentException("cannot create function " + className + ": " + problem + PLAIN_CLASS_FIX);
        }
        try {
            Constructor<?> constructor = type.getDeclaredConstructor();
            constructor.setAccessible(true);
            return (Serializable) constructor.newInstance();
        } catch (InvocationTargetException e) {
            throw new IllegalArgumentException("cannot create function " + className + ": its constructor threw "
                    + e.getCause(), e.getCause());
        } catch (ReflectiveOperationException | RuntimeException | ExceptionInInitializerError e) {
            throw new IllegalArgumentException("cannot create function " + className + ": " + e, e);
        }
    }

    /**
     * Why the reader could not recreate an instance of {@code type} as it is (it has state, or no no-arg
     * constructor), or null if it can.
     */
    private static String plainClassProblem(Class<?> type) {
        if (type.isHidden()) {
            return "it is a hidden class (a lambda of an interface that is not Serializable?)";
        }
        if (FUNCTION_TYPES.stream().noneMatch(f -> f.isAssignableFrom(type))) {
            // Also what keeps a corrupt or hostile message from instantiating an arbitrary class.
            return "it implements neither ActorFactory nor Method0..Method8";
        }
        List<String> fields = new ArrayList<>();
        for (Class<?> c = type; c != null && c != Object.class; c = c.getSuperclass()) {
            for (Field f : c.getDeclaredFields()) {
                if (!Modifier.isStatic(f.getModifiers())) {
                    fields.add(f.getName());
                }
            }
        }
        if (!fields.isEmpty()) {
            return "it has instance fields " + fields;
        }
        try {
            type.getDeclaredConstructor();
            return null;
        } catch (NoSuchMethodException e) {
            return "it has no no-arg constructor";
        }
    }

    private static Class<?> load(String className, ClassLoader loader, String what) {
        try {
            return Class.forName(className, false, loader);
        } catch (ClassNotFoundException | LinkageError e) {
            throw new IllegalArgumentException("cannot rebuild " + what + ": class " + className + " is not found in"
                    + " this process; put it on the class path of every process of the graph", e);
        }
    }

    private static String required(String value, String what) {
        if (value == null) {
            throw new IllegalArgumentException("corrupt wire message: the " + what + " of a function is null");
        }
        return value;
    }

    private static String describe(SerializedLambda lambda) {
        return "lambda " + lambda.getImplClass().replace('/', '.') + "." + lambda.getImplMethodName() + " (a "
                + lambda.getFunctionalInterfaceClass().replace('/', '.') + ")";
    }

    /** The lambda's serialized form, or null for an instance of a plain class. Mirrors {@code MethodRef}. */
    private static SerializedLambda serializedForm(Serializable function) {
        try {
            Method writeReplace = function.getClass().getDeclaredMethod("writeReplace");
            writeReplace.setAccessible(true);
            return writeReplace.invoke(function) instanceof SerializedLambda form ? form : null;
        } catch (NoSuchMethodException e) {
            return null;
        } catch (InvocationTargetException e) {
            throw new IllegalArgumentException("cannot send " + function.getClass().getName() + ": its writeReplace"
                    + " threw " + e.getCause(), e.getCause());
        } catch (IllegalAccessException | RuntimeException e) {
            throw new IllegalArgumentException("cannot send " + function.getClass().getName() + ": " + e, e);
        }
    }
}
