using Google.Protobuf;

namespace Hal.Backends.Npu.Onnx;

/// <summary>
/// Builds a one-graph ONNX model of standard operators (default domain, opset <see cref="Opset"/>) in code.
/// Inputs and outputs have symbolic dimensions, so one compiled session serves every shape of a given rank.
/// </summary>
internal sealed class OnnxGraph
{
    /// <summary>The operator set every graph imports: 17 has LayerNormalization and ScatterElements with reduction.</summary>
    public const long Opset = 17;

    /// <summary>ONNX IR version 8 pairs with opset 17.</summary>
    private const long IrVersion = 8;

    private readonly GraphProto _graph = new() { Name = "hal" };
    private int _next;

    /// <summary>Adds a graph input of <paramref name="dtype"/> and <paramref name="rank"/> symbolic dims; returns its name.</summary>
    public string Input(string name, DType dtype, int rank)
    {
        _graph.Input.Add(ValueInfo(name, dtype, rank));
        return name;
    }

    /// <summary>Marks <paramref name="value"/> as the graph output <paramref name="name"/> (adds an Identity when the names differ).</summary>
    public void Output(string name, string value, DType dtype, int rank)
    {
        if (value != name)
        {
            _graph.Node.Add(NewNode("Identity", [value], [name]));
        }
        _graph.Output.Add(ValueInfo(name, dtype, rank));
    }

    /// <summary>Adds a node with one output; returns the output's name.</summary>
    public string Node(string opType, string[] inputs, params AttributeProto[] attributes)
    {
        string output = $"t{_next++}";
        var node = NewNode(opType, inputs, [output]);
        node.Attribute.AddRange(attributes);
        _graph.Node.Add(node);
        return output;
    }

    /// <summary>Adds a node with several outputs; returns their names.</summary>
    public string[] NodeN(string opType, string[] inputs, int outputs, params AttributeProto[] attributes)
    {
        var names = new string[outputs];
        for (int i = 0; i < outputs; i++)
        {
            names[i] = $"t{_next++}";
        }
        var node = NewNode(opType, inputs, names);
        node.Attribute.AddRange(attributes);
        _graph.Node.Add(node);
        return names;
    }

    /// <summary>A scalar constant of <paramref name="dtype"/> (the value converted as a cast would); returns its name.</summary>
    public string Scalar(double value, DType dtype)
    {
        var bytes = new byte[dtype.SizeInBytes()];
        Numerics.HostConvert.FromDoubles([value], dtype, bytes);
        return Constant(dtype, [], bytes);
    }

    /// <summary>A 1-D I64 constant; returns its name.</summary>
    public string Int64s(params long[] values)
    {
        var bytes = new byte[values.Length * sizeof(long)];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return Constant(DType.I64, [values.Length], bytes);
    }

    /// <summary>x cast to <paramref name="to"/>, or x itself when it already has that dtype.</summary>
    public string Cast(string x, DType from, DType to) =>
        from == to ? x : Node("Cast", [x], Attr.Int("to", ElementType(to)));

    /// <summary>The serialised model.</summary>
    public byte[] ToBytes()
    {
        var model = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = "hal",
            Graph = _graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        return model.ToByteArray();
    }

    /// <summary>ONNX TensorProto.DataType of a Hal dtype.</summary>
    public static long ElementType(DType dtype) => dtype switch
    {
        DType.F32 => (long)TensorProto.Types.DataType.Float,
        DType.F64 => (long)TensorProto.Types.DataType.Double,
        DType.F16 => (long)TensorProto.Types.DataType.Float16,
        DType.BF16 => (long)TensorProto.Types.DataType.Bfloat16,
        DType.I32 => (long)TensorProto.Types.DataType.Int32,
        DType.I64 => (long)TensorProto.Types.DataType.Int64,
        DType.I8 => (long)TensorProto.Types.DataType.Int8,
        DType.U8 => (long)TensorProto.Types.DataType.Uint8,
        DType.Bool => (long)TensorProto.Types.DataType.Bool,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    private string Constant(DType dtype, long[] dims, byte[] raw)
    {
        string name = $"c{_next++}";
        var t = new TensorProto { Name = name, DataType = (int)ElementType(dtype), RawData = ByteString.CopyFrom(raw) };
        t.Dims.AddRange(dims);
        _graph.Initializer.Add(t);
        return name;
    }

    private NodeProto NewNode(string opType, string[] inputs, string[] outputs)
    {
        var node = new NodeProto { OpType = opType, Name = $"n{_next++}" };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        return node;
    }

    private static ValueInfoProto ValueInfo(string name, DType dtype, int rank)
    {
        var shape = new TensorShapeProto();
        for (int i = 0; i < rank; i++)
        {
            shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimParam = $"{name}_d{i}" });
        }
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)ElementType(dtype), Shape = shape } },
        };
    }
}

/// <summary>Node attributes.</summary>
internal static class Attr
{
    public static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public static AttributeProto Float(string name, float value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    public static AttributeProto String(string name, string value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };

    public static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }
}
